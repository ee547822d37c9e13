"""The short answer: a span of the selected sentence that answers the question, found without a QA model.

No extractive-QA model ships offline, so the span is chosen by cheap signals, each weighted on the dev half of
the XQuAD-en benchmark (`bench/tutor_retrieval.py`): the answer type the question word asks for (a number, a
date, a name, a place), the span's distance to the question's own words in the sentence, and its length. The
question's own words are never part of the span: the student already has them. The span is always copied from
the sentence, so the short answer stays as grounded as the sentence it comes from.
"""

import re
from dataclasses import dataclass

from education.services.retrieval import STOPWORDS, tokenize

MAX_WORDS = 6
# Weights tuned on the dev half of the benchmark's questions (never on the test half).
TYPE_WEIGHT = 1.0
PROXIMITY_WEIGHT = 0.5
LENGTH_PENALTY = 0.15  # for a typed answer (a number, a date, a name, a place)
OTHER_LENGTH_PENALTY = -0.02  # a bonus: other answers are phrases, the longest of equally near spans wins

_WORD = re.compile(r"[\w$£€][\w'’.,:/%$£€–-]*[\w%]|[\w$£€%]")
_BREAK = re.compile(r"[,;:()\[\]\"“”]|\s[–—-]\s")
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})s?$")
MONTHS = frozenset("january february march april may june july august september october november december".split())
NUMBER_WORDS = frozenset("""
one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred hundreds thousand
thousands million millions billion billions dozen dozens half once twice first second third fourth fifth
""".split())
DATE_WORDS = MONTHS | frozenset("century centuries decade decades bc ad bce ce".split())
_QUESTION_TYPES = (
    ("number", re.compile(r"\bhow\s+(many|much|long|old|far|large|big|tall|high|fast|often)\b"
                          r"|\bwhat\s+(percentage|percent|proportion|number|amount|size|population)\b"
                          r"|\b(what|which)\b.*\b(size|percentage|percent|rate|population|average|total|score|cost|price)\b",
                          re.I)),
    ("date", re.compile(r"\bwhen\b|\b(what|which)\s+(year|years|date|day|month|century|decade|era|period)\b"
                        r"|\bin\s+what\s+year\b|\bhow\s+long\s+ago\b", re.I)),
    ("person", re.compile(r"\bwho(m|se)?\b|\b(what|which)\s+(person|man|woman|team|company|group|organi[sz]ation)\b",
                          re.I)),
    ("place", re.compile(r"\bwhere\b|\b(what|which)\s+(country|city|state|place|region|continent|location|town|"
                         r"island|river|area)\b", re.I)),
)
_PLACE_BEFORE = frozenset("in at from near to into".split())


@dataclass
class Word:
    text: str
    start: int
    end: int
    asked: bool  # one of the question's own terms
    stop: bool


def answer_type(question: str) -> str:
    """What the question asks for: number, date, person, place, or other."""
    for name, pattern in _QUESTION_TYPES:
        if pattern.search(question):
            return name
    return "other"


def sentence_words(sentence: str, question_terms: set[str]) -> list[Word]:
    """The sentence's words with their offsets (numbers like 23–16 or 1,000 stay whole), marked asked or stop."""
    words = []
    for match in _WORD.finditer(sentence):
        text = match.group()
        terms = tokenize(text)
        words.append(Word(text=text, start=match.start(), end=match.end(),
                          asked=bool(terms) and all(t in question_terms for t in terms),
                          stop=text.lower() in STOPWORDS and text.lower() not in NUMBER_WORDS))
    return words


def runs(sentence: str, words: list[Word]) -> list[list[int]]:
    """Indices of consecutive words that are not the question's own, split at punctuation that ends a phrase."""
    out: list[list[int]] = []
    current: list[int] = []
    for i, word in enumerate(words):
        broken = i > 0 and _BREAK.search(sentence[words[i - 1].end:word.start])
        if word.asked or broken:
            if current:
                out.append(current)
            current = []
        if not word.asked:
            current.append(i)
    if current:
        out.append(current)
    return out


def type_fit(kind: str, span: list[Word], before: Word | None) -> float:
    """How well a span looks like the kind of answer asked for: 0 to 1, or -1 for a span that never answers."""
    lowered = [w.text.lower().rstrip(".") for w in span]
    has_digit = any(any(ch.isdigit() for ch in w) for w in lowered)
    if kind == "number":
        return 1.0 if has_digit or any(w in NUMBER_WORDS for w in lowered) else 0.0
    if kind == "date":
        if any(_YEAR.match(w) for w in lowered) or any(w in DATE_WORDS for w in lowered):
            return 1.0
        return 0.5 if has_digit else 0.0
    content = [w for w in span if not w.stop]
    capitalised = sum(w.text[:1].isupper() for w in content) / len(content) if content else 0.0
    if kind == "person":
        return capitalised
    if kind == "place":
        return capitalised * (1.0 if before is not None and before.text.lower() in _PLACE_BEFORE else 0.7)
    if len(span) == 1 and lowered[0].endswith("ly"):
        return -1.0  # "putatively", "originally": an adverb next to the question's words is never the answer
    return 0.0


def _capitalised(word: Word) -> bool:
    return word.text[:1].isupper()


def _cuts_name(words: list[Word], run: list[int], a: int, b: int) -> bool:
    """Does the span run[a..b] start or end inside a sequence of capitalised words (a name, a title)?"""
    inside_start = a > 0 and _capitalised(words[run[a - 1]]) and _capitalised(words[run[a]])
    inside_end = b + 1 < len(run) and _capitalised(words[run[b]]) and _capitalised(words[run[b + 1]])
    return inside_start or inside_end


def proximity(words: list[Word], first: int, last: int) -> float:
    """1 when the span touches one of the question's words in the sentence, falling with the gap between them."""
    gaps = [first - i - 1 for i in range(first) if words[i].asked]
    gaps += [i - last - 1 for i in range(last + 1, len(words)) if words[i].asked]
    return 1.0 / (1 + min(gaps)) if gaps else 0.0


def short_answer_extract(question: str, sentence: str) -> str:
    """The span of `sentence` that best answers `question` ("" when only the question's own words and stopwords
    are left)."""
    kind = answer_type(question)
    words = sentence_words(sentence, set(tokenize(question)))
    best, best_score = None, float("-inf")
    for run in runs(sentence, words):
        for a in range(len(run)):
            for b in range(a, min(a + MAX_WORDS, len(run))):
                first, last = run[a], run[b]
                span = words[first:last + 1]
                if span[0].stop or span[-1].stop or _cuts_name(words, run, a, b):
                    continue  # "of the ..." or half of "New England Patriots" is a worse version of another span
                before = words[first - 1] if first else None
                score = (TYPE_WEIGHT * type_fit(kind, span, before) + PROXIMITY_WEIGHT * proximity(words, first, last)
                         - (LENGTH_PENALTY if kind != "other" else OTHER_LENGTH_PENALTY) * len(span))
                if score > best_score + 1e-9:
                    best, best_score = (first, last), score
    if best is None:
        return ""
    return sentence[words[best[0]].start:words[best[1]].end]
