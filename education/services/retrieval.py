"""Retrieval over a course's passages: BM25 and dense cosine, min-max fused, reranked by term proximity, then
by the passage's best single sentence (its MiniLM cosine with the question and its idf-weighted term overlap).

A question is usually answered by one sentence, and a passage's vector averages all of its sentences: the best
sentence's cosine tells apart passages on the same topic that the passage vectors find alike. Each sentence's
vector is stored with its passage's when the material is embedded (`MaterialChunk.sentence_embeddings`), so a
question costs one embedding (its own) and a matrix product; the top passages of material embedded before they
were stored have their sentences that share a term with the question embedded at query time, in one batch.

When the top two passages still score close, the tutor's language model breaks the tie by query likelihood: the
passage after which it finds the question likelier goes first (UPR, Sachan et al. 2022). About one question in
five pays for the two LM passes (~1 s on 2 CPU cores; docs/benchmarks.md).
"""

import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from education.models import Course, CourseMaterial, MaterialChunk
from mlcore import api as ml

log = logging.getLogger(__name__)

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing done down during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other
our ours ourselves out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves also may might must shall us let lets get gets got one ones thing things
tell explain describe mean means meant please kind sort way ways use used using make makes according say says said
""".split())
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
HYBRID_DENSE_WEIGHT = 0.5
RERANK_POOL = 20
RERANK_WEIGHTS = (0.6, 0.25, 0.15)  # fused score, question-term coverage, question bigrams found in order
# The top passages rescored by their best sentence (the tutor cites 3); past them the order is the term rerank's,
# and so is the score. Pool and weights chosen on the dev half of the XQuAD-en questions (bench/tutor_retrieval.py).
SENTENCE_POOL = 3
SENTENCE_WEIGHTS = (0.1, 0.7, 0.2)  # rerank score, best sentence cosine, best sentence term overlap
SENTENCE_BIGRAM_WEIGHT = 0.3
SENTENCE_MIN_TERMS = 3  # fewer terms: a heading or a fragment, not a sentence that answers
# When the top two passages score within LIKELIHOOD_MARGIN, each gains LIKELIHOOD_WEIGHT x its min-max scaled query
# likelihood (the mean log-probability per token of the question after the passage, from the tutor's LM): with
# two passages, the likelier one goes first. Margin, pool and weight chosen on the XQuAD-en dev half.
LIKELIHOOD_POOL = 2
LIKELIHOOD_MARGIN = 0.15
LIKELIHOOD_WEIGHT = 0.3
LIKELIHOOD_PROMPT = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"
_SENTENCE = re.compile(r"\S.*?(?:[.!?][\"”’)\]]*(?=\s)|\n\s*\n|\Z)", re.S)
_MARKUP = re.compile(r"^\s*(#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
Embed = Callable[[list[str]], list[list[float]]]
# (contexts, continuations) -> the mean log-probability per token of each continuation after its context; None
# when no language model can say.
Likelihood = Callable[[list[str], list[str]], list[float] | None]


def stem(word: str) -> str:
    """A light suffix stripper: plurals, -ing, -ed, a final e (cites, cited, citing, cite -> cit)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) >= len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # planning -> plann -> plan
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercased, stopwords dropped, stemmed terms of `text`, in order."""
    return [stem(t) for t in _TOKEN.findall(text.lower().replace("’", "'")) if t not in STOPWORDS]


class BM25:
    """Okapi BM25 over tokenized documents (k1, b as in Robertson & Zaragoza)."""

    def __init__(self, documents: list[list[str]], *, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.counts = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.average_length = (sum(self.lengths) / len(documents)) if documents else 0.0
        df = Counter(term for counts in self.counts for term in counts)
        n = len(documents)
        self.idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}

    def scores(self, query: list[str]) -> list[float]:
        terms = [t for t in dict.fromkeys(query) if t in self.idf]
        out = []
        for counts, length in zip(self.counts, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.average_length) if self.average_length else self.k1
            total = 0.0
            for term in terms:
                tf = counts.get(term, 0)
                if tf:
                    total += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
            out.append(total)
        return out


def sentences(text: str) -> list[str]:
    """The sentences of a passage, whitespace collapsed and list or heading markup dropped."""
    out = []
    for match in _SENTENCE.finditer(text):
        sentence = _MARKUP.sub("", " ".join(match.group().split()))
        if sentence:
            out.append(sentence)
    return out


def min_max(values: list[float]) -> list[float]:
    """Scale to [0, 1]; all-equal values become 0 (they tell nothing apart)."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return [0.0] * len(values)
    return [(v - low) / (high - low) for v in values]


def coverage(question_terms: list[str], passage_terms: list[str]) -> float:
    """Share of the question's distinct terms that the passage contains."""
    wanted = set(question_terms)
    return len(wanted & set(passage_terms)) / len(wanted) if wanted else 0.0


def bigram_proximity(question_terms: list[str], passage_terms: list[str], *, window: int = 3) -> float:
    """Share of the question's consecutive term pairs that appear, in order, within `window` terms in the passage."""
    pairs = list(zip(question_terms, question_terms[1:], strict=False))
    if not pairs:
        return 0.0
    positions: dict[str, list[int]] = {}
    for i, term in enumerate(passage_terms):
        positions.setdefault(term, []).append(i)
    found = 0
    for first, second in pairs:
        seconds = positions.get(second, [])
        if any(0 < j - i <= window for i in positions.get(first, []) for j in seconds):
            found += 1
    return found / len(pairs)


def sentence_overlap(question_terms: list[str], sentence_terms: list[str], idf: dict[str, float]) -> float:
    """The idf-weighted share of the question's terms in a sentence, plus a bonus for its bigrams found in order."""
    wanted = set(question_terms)
    if not wanted:
        return 0.0
    weight = {t: idf.get(t, 1.0) for t in wanted}
    overlap = sum(weight[t] for t in wanted & set(sentence_terms)) / (sum(weight.values()) or 1.0)
    return overlap + SENTENCE_BIGRAM_WEIGHT * bigram_proximity(question_terms, sentence_terms)


@dataclass
class Passage:
    chunk: MaterialChunk
    score: float
    bm25: float = 0.0
    dense: float | None = None
    coverage: float = 0.0
    terms: list[str] = field(default_factory=list, repr=False)
    # Each sentence's cosine with the question (those sharing a term with it), for the passages the sentence
    # rerank scored.
    sentence_cosines: dict[str, float] = field(default_factory=dict, repr=False)
    # The question's likelihood after this passage, for the passages the likelihood tie-break scored.
    question_likelihood: float | None = None


def _score_order(passage: Passage) -> tuple:
    """Best score first; ties in the material's own order (stable between runs)."""
    return -passage.score, passage.chunk.material_id, passage.chunk.position


@dataclass
class Retrieval:
    question_terms: list[str]
    passages: list[Passage]  # best first
    idf: dict[str, float]

    @property
    def top(self) -> Passage | None:
        return self.passages[0] if self.passages else None


def course_chunks(*, course: Course):
    """Every passage of the course's usable material (not failed), with its material.

    The sentence vectors are left out (one vector per sentence, several times the passage vector's size): only
    the top passages' are read, by `sentence_rerank`.
    """
    return (MaterialChunk.objects.filter(material__course=course)
            .exclude(material__state=CourseMaterial.State.FAILED)
            .select_related("material").defer("sentence_embeddings").order_by("material_id", "position"))


def sentence_vectors(chunk: MaterialChunk, *, count: int, dim: int) -> np.ndarray | None:
    """The passage's stored sentence vectors, `count` rows of `dim`; None when it has none (embedded before they
    were stored) or they do not fit (made by an encoder of another dimension)."""
    if not chunk.sentence_embeddings:
        return None
    matrix = np.frombuffer(bytes(chunk.sentence_embeddings), dtype=np.float32)
    if count == 0 or matrix.shape[0] != count * dim:
        return None
    return matrix.reshape(count, dim)


def _sentence_vectors_read(chunks: list[MaterialChunk]) -> None:
    """Read, in one query, the stored sentence vectors that `course_chunks` left out of these passages."""
    deferred = [c for c in chunks if c.pk and "sentence_embeddings" in c.get_deferred_fields()]
    if deferred:
        stored = dict(MaterialChunk.objects.filter(pk__in=[c.pk for c in deferred])
                      .values_list("pk", "sentence_embeddings"))
        for chunk in deferred:
            chunk.sentence_embeddings = stored.get(chunk.pk)


def sentence_rerank(passages: list[Passage], *, question_terms: list[str], idf: dict[str, float],
                    question_vector: list[float] | None, embed: Embed | None) -> list[Passage]:
    """Rescore the top SENTENCE_POOL passages by their best sentence; the others follow in their order.

    Only sentences that share a term with the question are scored (half of them, at no loss on the dev half).
    Their vectors are the passage's stored ones; a passage without (material embedded before they were stored,
    or by an encoder of another dimension) has those sentences embedded now by `embed`, in one batch: that
    batch was most of the answer path's time on CPU.
    """
    pool, rest = passages[:SENTENCE_POOL], passages[SENTENCE_POOL:]
    groups = [[(text, terms, sentence_overlap(question_terms, terms, idf))
               for text, terms in ((t, tokenize(t)) for t in sentences(p.chunk.text))] for p in pool]
    if question_vector is not None:
        _sentence_vectors_read([p.chunk for p in pool])
        unstored = []
        for passage, group in zip(pool, groups, strict=True):
            matrix = sentence_vectors(passage.chunk, count=len(group), dim=len(question_vector))
            if matrix is None:
                unstored.append((passage, group))
                continue
            rows = [i for i, (_, _, overlap) in enumerate(group) if overlap > 0]
            if rows:
                passage.sentence_cosines = dict(zip((group[i][0] for i in rows),
                                                    _cosines(matrix[rows], question_vector), strict=True))
        wanted = list(dict.fromkeys(text for _, group in unstored for text, _, overlap in group if overlap > 0))
        if embed and wanted:
            cosine = dict(zip(wanted, _cosines(embed(wanted), question_vector), strict=True))
            for passage, group in unstored:
                passage.sentence_cosines = {text: cosine[text] for text, _, _ in group if text in cosine}
    w_score, w_cosine, w_overlap = SENTENCE_WEIGHTS
    for passage, group in zip(pool, groups, strict=True):
        best_overlap = max((overlap for _, terms, overlap in group if len(terms) >= SENTENCE_MIN_TERMS), default=0.0)
        passage.score = (w_score * passage.score + w_cosine * max(passage.sentence_cosines.values(), default=0.0)
                         + w_overlap * best_overlap)
    return sorted(pool, key=_score_order) + rest


def likelihood_rerank(passages: list[Passage], *, question: str, likelihood: Likelihood | None) -> list[Passage]:
    """Break a close call between the top passages by how likely the LM finds the question after each.

    Only when the top two score within LIKELIHOOD_MARGIN: the rest of the time (about 4 questions in 5 on
    XQuAD-en) the ranking stands and the LM is not asked.
    """
    pool, rest = passages[:LIKELIHOOD_POOL], passages[LIKELIHOOD_POOL:]
    question = " ".join(question.split())
    if likelihood is None or len(pool) < 2 or not question or pool[0].score - pool[1].score >= LIKELIHOOD_MARGIN:
        return passages
    values = likelihood([LIKELIHOOD_PROMPT.format(passage=p.chunk.text) for p in pool], [" " + question] * len(pool))
    if values is None:
        return passages
    for passage, value, scaled in zip(pool, values, min_max(values), strict=True):
        passage.question_likelihood = value
        passage.score += LIKELIHOOD_WEIGHT * scaled
    return sorted(pool, key=_score_order) + rest


def _cosines(vectors: list[list[float]], query: list[float]) -> list[float]:
    matrix = np.asarray(vectors, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    return (matrix @ q / (np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0) + 1e-12)).tolist()


def rank(question: str, chunks: list[MaterialChunk], *, question_vector: list[float] | None = None,
         k: int = 5, embed: Embed | None = None, likelihood: Likelihood | None = None) -> Retrieval:
    """Rank passages for a question: BM25 + cosine (where embeddings exist), min-max fused, then reranked.

    `embed` (texts -> vectors, the encoder that made `question_vector`) embeds the top passages' sentences when
    their vectors were not stored with the passage (see `sentence_rerank`). `likelihood` breaks a close call
    between the top two (see `likelihood_rerank`); without it the ranking ends with the sentence rerank.
    """
    question_terms = tokenize(question)
    passage_terms = [tokenize(f"{c.heading} {c.text}") for c in chunks]
    bm25 = BM25(passage_terms)
    lexical = bm25.scores(question_terms)
    dense: list[float | None] = [None] * len(chunks)
    if question_vector is not None:
        with_vectors = [i for i, c in enumerate(chunks) if c.embedding]
        if with_vectors:
            vectors = [np.frombuffer(bytes(chunks[i].embedding), dtype=np.float32) for i in with_vectors]
            if all(v.shape[0] == len(question_vector) for v in vectors):
                for i, value in zip(with_vectors, _cosines(vectors, question_vector), strict=True):
                    dense[i] = value
    fused = min_max(lexical)
    known = [i for i, value in enumerate(dense) if value is not None]
    if known:
        dense_norm = dict(zip(known, min_max([dense[i] for i in known]), strict=True))
        fused = [(1 - HYBRID_DENSE_WEIGHT) * f + HYBRID_DENSE_WEIGHT * dense_norm.get(i, 0.0)
                 for i, f in enumerate(fused)]
    pool = sorted(range(len(chunks)), key=lambda i: (-fused[i], i))[:RERANK_POOL]
    w_fused, w_cover, w_bigram = RERANK_WEIGHTS
    passages = []
    for i in pool:
        cover = coverage(question_terms, passage_terms[i])
        score = (w_fused * fused[i] + w_cover * cover
                 + w_bigram * bigram_proximity(question_terms, passage_terms[i]))
        passages.append(Passage(chunk=chunks[i], score=score, bm25=lexical[i], dense=dense[i], coverage=cover,
                                terms=passage_terms[i]))
    passages.sort(key=_score_order)
    passages = sentence_rerank(passages, question_terms=question_terms, idf=bm25.idf,
                               question_vector=question_vector, embed=embed)
    passages = likelihood_rerank(passages, question=question, likelihood=likelihood)
    return Retrieval(question_terms=question_terms, passages=passages[:k], idf=bm25.idf)


def passages_search(*, course: Course, question: str, k: int = 5) -> Retrieval:
    """The course's passages best matching `question` (only this course's material is searched)."""
    chunks = list(course_chunks(course=course))
    vector = None
    if chunks and any(c.embedding for c in chunks):
        try:
            vector = ml.embed([question])[0]
        except Exception:  # noqa: BLE001  (no encoder here: rank by words alone)
            vector = None
    return rank(question, chunks, question_vector=vector, k=k, embed=ml.embed if vector is not None else None,
                likelihood=tutor_likelihood if settings.EDUCATION_TUTOR_LIKELIHOOD_RERANK else None)


def tutor_likelihood(contexts: list[str], continuations: list[str]) -> list[float] | None:
    """The tutor model's likelihood of each continuation after its context; None when it cannot be had (no active
    tutor model, a model that cannot score): the ranking then stands as it is."""
    try:
        return ml.likelihood(ml.Task.TUTOR, contexts, continuations)
    except (ml.NoActiveVersion, ml.ModelNotReady):
        return None
    except Exception:  # noqa: BLE001  (a tie-break is not worth failing the student's question over)
        log.exception("tutor: the likelihood tie-break could not run; the passages keep their order")
        return None
