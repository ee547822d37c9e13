"""Essay feedback in plain Python: inline items anchored to character spans, and text statistics.

Every item is `{"start", "end", "kind", "message", "rubric_line"?, "criterion"?}` where `text[start:end]` is
exactly the flagged word, phrase or sentence. Comments cite the rubric criterion they relate to, matched by
keywords in the criterion's name and description (spelling → a "conventions"/"mechanics" criterion, and so on).
"""

import math
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import lru_cache

LONG_SENTENCE_WORDS = 40
REPEAT_COUNT = 3
REPEAT_WINDOW_WORDS = 50
RARE_WORD_RANK = 5000  # words outside the 5,000 most frequent English words count as rare

WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")
SENTENCE_END = re.compile(r"[.!?]+[\"'”’)]*(?=\s|$)")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
ABBREVIATIONS = {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "st", "no", "p", "pp", "cf"}

# Words pyspellchecker's dictionary lacks that essays use all the time.
MODERN_WORDS = {
    "smartphone", "smartphones", "online", "email", "emails", "website", "websites", "app", "apps", "internet",
    "texting", "homework", "ok", "okay", "teenagers", "wifi", "laptop", "laptops", "livestream", "selfie",
}

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves one many much even also like
make makes made get gets got thing things think people really lot lots way ways every still well
""".split())

TRANSITIONS = (
    "however", "furthermore", "moreover", "in addition", "additionally", "first", "firstly", "second", "secondly",
    "third", "thirdly", "finally", "lastly", "for example", "for instance", "in conclusion", "to conclude",
    "to sum up", "in summary", "therefore", "thus", "on the other hand", "also", "another", "although", "though",
    "similarly", "likewise", "in contrast", "by contrast", "as a result", "consequently", "meanwhile", "next",
    "then", "overall", "besides", "instead", "despite", "nevertheless", "nonetheless", "on the one hand",
    "because of this", "after", "before", "since", "while", "even though", "above all", "most importantly",
    "to begin", "in the end", "admittedly", "of course", "some people", "others", "critics", "yet", "but",
)

# Plain confusions: (pattern, replacement, message). Matched case-insensitively on word boundaries.
CONFUSIONS = [
    (r"\b(could|should|would|must|might) of\b", None, 'Write "{1} have" (or "{1}\'ve"), not "{0}".'),
    (r"\balot\b", "a lot", '"alot" is not a word: write "a lot".'),
    (r"\birregardless\b", "regardless", 'Use "regardless".'),
    (r"\bit's own\b", "its own", 'Possessive "its" has no apostrophe: "its own".'),
    (r"\bits (a|an|the|not|been|going|very|important|hard|easy|true|clear|time|because)\b", None,
     'Here "its" should be "it\'s" (it is / it has).'),
    (r"\byour (welcome|going|right|wrong|not)\b", None, 'Here "your" should be "you\'re" (you are).'),
    (r"\b(more|less|better|worse|rather|other) then\b", None, 'Use "than" in comparisons: "{1} than".'),
    (r"\bthere (own|children|parents|friends|homework|work|phones|teacher|teachers|family|families)\b", None,
     'Possessive "their", not "there": "their {1}".'),
    (r"\bto (much|expensive|busy|crowded)\b", None,
     'Use "too" (more than enough): "too {1}".'),
]

A_AN_EXCEPTIONS_A = ("uni", "use", "usu", "one", "once", "eu", "ewe", "uti", "ura", "ure", "uro")
A_AN_EXCEPTIONS_AN = ("hour", "honest", "honor", "honour", "heir", "herb")

# kind → (keywords matched against rubric criteria and traits, in order of preference)
KIND_KEYWORDS = {
    "spelling": ("spelling", "convention", "mechanic"),
    "grammar": ("grammar", "usage", "convention", "mechanic", "language"),
    "capitalization": ("capital", "mechanic", "convention"),
    "long_sentence": ("sentence", "fluency", "style", "clarity", "language", "convention"),
    "repetition": ("word choice", "vocabulary", "style", "language", "fluency"),
    "transition": ("transition", "organi", "structure", "coherence", "development"),
}


@dataclass
class FeedbackResult:
    items: list[dict] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)


@lru_cache(maxsize=1)
def _spellchecker():
    from spellchecker import SpellChecker

    # Distance 1: suggestions one edit away. The default (2) spends ~0.5 s per unknown word on candidates,
    # which made feedback for a 300-word essay take seconds.
    return SpellChecker(distance=1)


@lru_cache(maxsize=20_000)
def _suggestion(word: str) -> str | None:
    return _spellchecker().correction(word)


@lru_cache(maxsize=1)
def _common_word_cutoff() -> int:
    counts = sorted(_spellchecker().word_frequency.dictionary.values(), reverse=True)
    return counts[min(RARE_WORD_RANK, len(counts) - 1)]


def _words(text: str) -> list[re.Match]:
    return [m for m in WORD.finditer(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, without surrounding whitespace; paragraph breaks also end sentences."""
    spans = []
    for para_start, para_end in paragraph_spans(text):
        start = para_start
        for match in SENTENCE_END.finditer(text, para_start, para_end):
            before = text[start : match.start()].split()
            last = before[-1].lower().rstrip(".") if before else ""
            if match.group().startswith(".") and (last in ABBREVIATIONS or len(last) == 1 and last.isalpha()):
                continue
            spans.append((start, match.end()))
            start = match.end()
            while start < para_end and text[start].isspace():
                start += 1
        if text[start:para_end].strip():
            spans.append((start, para_end))
    return spans


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in PARAGRAPH_BREAK.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def syllables(word: str) -> int:
    """A vowel-group estimate of a word's syllables (at least one)."""
    word = word.lower().strip("'’")
    if not word:
        return 0
    groups = re.findall(r"[aeiouy]+", word)
    count = len(groups)
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    return max(count, 1)


def statistics(text: str) -> dict:
    """Readability (Flesch reading ease, words per sentence) and vocabulary (type/token ratio, rare-word share)."""
    words = [m.group() for m in _words(text) if not m.group().isdigit()]
    n_words = len(words)
    n_sentences = max(len(sentence_spans(text)), 1) if n_words else 0
    if not n_words:
        return {"words": 0, "sentences": 0, "paragraphs": 0, "words_per_sentence": 0.0, "flesch_reading_ease": 0.0,
                "type_token_ratio": 0.0, "rare_word_share": 0.0, "avg_word_length": 0.0}
    n_syllables = sum(syllables(w) for w in words)
    lower = [w.lower().replace("’", "'") for w in words]
    frequency = _spellchecker().word_frequency
    cutoff = _common_word_cutoff()
    rare = sum(1 for w in lower if frequency[w] < cutoff)
    wps = n_words / n_sentences
    return {
        "words": n_words,
        "sentences": n_sentences,
        "paragraphs": len(paragraph_spans(text)),
        "words_per_sentence": round(wps, 2),
        "flesch_reading_ease": round(206.835 - 1.015 * wps - 84.6 * n_syllables / n_words, 2),
        "type_token_ratio": round(len(set(lower)) / n_words, 4),
        "rare_word_share": round(rare / n_words, 4),
        "avg_word_length": round(sum(len(w) for w in words) / n_words, 2),
    }


def rubric_citation(kind: str, rubric: list[dict]) -> dict | None:
    """The rubric criterion a comment of `kind` relates to: `{"criterion", "text"}`, or None if none fits."""
    for keyword in KIND_KEYWORDS.get(kind, ()):
        for criterion in rubric or []:
            haystack = f"{criterion.get('name', '')} {criterion.get('description', '')}".lower()
            if keyword in haystack:
                text = criterion.get("description") or criterion.get("name", "")
                return {"criterion": criterion.get("name", ""), "text": text}
    return None


def trait_for_kind(kind: str, traits: list[str]) -> str | None:
    """The trait a feedback kind counts against (by keyword in the trait's name), or None."""
    for keyword in KIND_KEYWORDS.get(kind, ()):
        for trait in traits:
            if keyword in trait.lower():
                return trait
    return None


def _item(start: int, end: int, kind: str, message: str) -> dict:
    return {"start": start, "end": end, "kind": kind, "message": message}


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def grammar_items(text: str) -> list[dict]:
    """Doubled words, a/an, common confusions, lowercase sentence starts and a lowercase "i"."""
    items = []
    for pattern, replacement, message in CONFUSIONS:
        for m in re.finditer(pattern, text, flags=re.IGNORECASE):
            groups = [m.group(0), *m.groups()]
            shown = message.format(*groups)
            items.append(_item(m.start(), m.end(), "grammar", shown if replacement is None else message))
    for m in re.finditer(r"\b([A-Za-z]+)(?:[ \t]+|[ \t]*\n[ \t]*)(\1)\b", text, flags=re.IGNORECASE):
        if m.group(1).lower() in {"had", "that"}:  # "had had" and "that that" can be correct
            continue
        items.append(_item(m.start(), m.end(), "grammar", f'Doubled word: "{m.group(1)}" twice in a row.'))
    for m in re.finditer(r"\b([Aa])\s+([A-Za-z]+)", text):
        nxt = m.group(2).lower()
        if nxt[0] in "aeiou" and not nxt.startswith(A_AN_EXCEPTIONS_A) or nxt.startswith(A_AN_EXCEPTIONS_AN):
            items.append(_item(m.start(1), m.end(1), "grammar", f'Use "an" before "{m.group(2)}".'))
    for m in re.finditer(r"\b([Aa]n)\s+([A-Za-z]+)", text):
        nxt = m.group(2).lower()
        if (nxt[0] not in "aeiou" and not nxt.startswith(A_AN_EXCEPTIONS_AN)) or nxt.startswith(A_AN_EXCEPTIONS_A):
            items.append(_item(m.start(1), m.end(1), "grammar", f'Use "a" before "{m.group(2)}".'))
    for m in re.finditer(r"(?<![\w'’.])i\b(?!\.e\b)", text):
        items.append(_item(m.start(), m.end(), "capitalization", 'The pronoun "I" is always a capital letter.'))
    for start, _end in sentence_spans(text):
        first = WORD.match(text, start)
        if first and first.group()[0].islower() and first.group() != "i":
            items.append(_item(first.start(), first.end(), "capitalization",
                               "Start the sentence with a capital letter."))
    return items


def spelling_items(text: str, *, prompt: str = "", skip: list[tuple[int, int]] | None = None) -> list[dict]:
    """Words the dictionary does not know, except capitalised words, numbers and words of the prompt."""
    checker = _spellchecker()
    prompt_words = {w.group().lower() for w in _words(prompt)}
    candidates = []
    for m in _words(text):
        word = m.group()
        if any(c.isdigit() for c in word) or any(c.isupper() for c in word) or len(word) < 2:
            continue
        lower = word.lower().replace("’", "'")
        if lower in prompt_words or lower in MODERN_WORDS or (skip and _overlaps(skip, m.start(), m.end())):
            continue
        candidates.append((m, lower))
    unknown = checker.unknown([lower for _, lower in candidates])
    items = []
    for m, lower in candidates:
        if lower not in unknown:
            continue
        stem = lower.split("'")[0]
        if "'" in lower and stem not in checker.unknown([stem]):
            continue
        suggestion = _suggestion(lower) if len(lower) <= 15 else None
        message = f'Spelling: "{m.group()}"' + (f' — did you mean "{suggestion}"?' if suggestion and
                                                 suggestion != lower else " is not in the dictionary.")
        items.append(_item(m.start(), m.end(), "spelling", message))
    return items


def long_sentence_items(text: str) -> list[dict]:
    items = []
    for start, end in sentence_spans(text):
        count = len(_words(text[start:end]))
        if count > LONG_SENTENCE_WORDS:
            items.append(_item(start, end, "long_sentence",
                               f"This sentence runs to {count} words; split it so each idea is clear."))
    return items


def repetition_items(text: str, *, prompt: str = "") -> list[dict]:
    """The occurrence that makes a content word appear REPEAT_COUNT times within REPEAT_WINDOW_WORDS words.

    Words of the prompt are the essay's topic and are expected to recur, so they are not counted.
    """
    items, flagged = [], {w.group().lower() for w in _words(prompt)}
    recent: dict[str, deque] = {}
    for position, m in enumerate(_words(text)):
        word = m.group().lower()
        if word in STOPWORDS or len(word) < 4 or word.isdigit() or word in flagged:
            continue
        seen = recent.setdefault(word, deque())
        seen.append(position)
        while seen and position - seen[0] >= REPEAT_WINDOW_WORDS:
            seen.popleft()
        if len(seen) >= REPEAT_COUNT:
            flagged.add(word)
            items.append(_item(m.start(), m.end(), "repetition",
                               f'"{m.group()}" appears {len(seen)} times within {REPEAT_WINDOW_WORDS} words; '
                               "vary the word or combine the sentences."))
    return items


def transition_items(text: str) -> list[dict]:
    """Paragraphs after the first that open without a transition; one long block with no paragraphs."""
    paragraphs = paragraph_spans(text)
    items = []
    if len(paragraphs) == 1 and len(_words(text)) > 150:
        first = sentence_spans(text)[0]
        items.append(_item(first[0], first[1], "transition",
                           "The essay is one block of text: use paragraphs, one per main idea, joined by transitions."))
        return items
    for start, end in paragraphs[1:]:
        opening = " ".join(w.group().lower() for w in _words(text[start:end])[:6])
        if any(re.search(rf"\b{re.escape(t)}\b", opening) for t in TRANSITIONS):
            continue
        sentence_end = next((e for s, e in sentence_spans(text) if s == start), end)
        items.append(_item(start, sentence_end, "transition",
                           "This paragraph starts without a transition: link it to the one before "
                           '(e.g. "However", "In addition", "As a result").'))
    return items


def essay_feedback(text: str, *, prompt: str = "", rubric: list[dict] | None = None) -> FeedbackResult:
    """All feedback items for `text`, sorted by position, each citing its rubric criterion where one fits."""
    grammar = grammar_items(text)
    word_level = [(i["start"], i["end"]) for i in grammar]
    items = [*grammar, *spelling_items(text, prompt=prompt, skip=word_level), *long_sentence_items(text),
             *repetition_items(text, prompt=prompt), *transition_items(text)]
    unique = {(i["start"], i["end"], i["kind"]): i for i in items}
    items = sorted(unique.values(), key=lambda i: (i["start"], i["end"], i["kind"]))
    for item in items:
        citation = rubric_citation(item["kind"], rubric or [])
        if citation:
            item["criterion"] = citation["criterion"]
            item["rubric_line"] = citation["text"]
    return FeedbackResult(items=items, statistics=statistics(text))


def feedback_density(items: list[dict], words: int) -> Counter:
    """Items of each kind per 100 words."""
    counts = Counter(i["kind"] for i in items)
    scale = 100 / max(words, 1)
    return Counter({kind: n * scale for kind, n in counts.items()})


def highlight_segments(text: str, items: list[dict]) -> list[dict]:
    """The text cut at every item boundary: `{"text", "items": [index, ...], "kinds": [...]}` in order.

    Templates render each segment with items as a <mark> (autoescaped), so spans never need HTML built here.
    """
    cuts = {0, len(text)}
    for item in items:
        cuts.update((max(0, min(item["start"], len(text))), max(0, min(item["end"], len(text)))))
    bounds = sorted(cuts)
    segments = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        if start == end:
            continue
        covering = [n for n, i in enumerate(items) if i["start"] <= start and end <= i["end"]]
        segments.append({
            "text": text[start:end], "items": [n + 1 for n in covering],
            "kinds": sorted({items[n]["kind"] for n in covering}),
            "title": " · ".join(items[n]["message"] for n in covering),
        })
    return segments


def flesch_label(score: float) -> str:
    """The usual reading of a Flesch reading-ease score."""
    bands = [(90, "very easy"), (80, "easy"), (70, "fairly easy"), (60, "plain English"), (50, "fairly difficult"),
             (30, "difficult")]
    for floor, label in bands:
        if score >= floor:
            return label
    return "very difficult" if not math.isnan(score) else ""
