"""Tutor retrieval and answer quality on XQuAD-en (SQuAD v1.1 dev subset): the app's own retrieval code.

Protocol:

1. The 240 context paragraphs become course material (each its own document, cut into passages by
   `education.services.material.chunk_spans`, as an upload would be); the 1,190 questions are the students'
   questions, each with its own paragraph as the gold document.
2. Honest tuning: the paragraphs are split by a stable hash of their text (first byte of its SHA-256 even:
   dev, odd: test). Every weight and threshold of the tutor's retrieval, answer selection and short answer
   was chosen on the dev half's questions only; figures are reported for dev, test and all.
3. Passages and their sentences are embedded with the packaged MiniLM (`mlcore.runtime.embed`, what
   `mlcore.api.embed` runs) by the app's own `education.services.material.passages_embed`, exactly as the
   `ml` worker stores them (heading + text, no headings here; each passage's sentence vectors, which the
   sentence rerank reads).
4. For each question: dense (cosine), BM25, their min-max hybrid, the hybrid + term rerank, + the
   best-sentence rerank (the app before the LM tie-break) and the app's full ranking
   (`education.services.retrieval.rank`: + the tutor LM's query-likelihood tie-break between the top two
   passages when they score within `LIKELIHOOD_MARGIN`, the packaged SmolLM2 as the tutor model;
   `--no-likelihood` leaves it out). A passage counts as a hit when it belongs to the gold paragraph.
   Recall@1, recall@5 and MRR (over the top 20), and how many questions asked the LM.
5. The answer the student reads: the sentence the tutor selects from the top passages
   (`education.services.tutor.answer_select`), with the short answer (`education.services.short_answer`)
   marked inside it; both are reported; nothing when the tutor says the material does not cover the question
   (`is_supported`). Reported: how often the gold answer string is contained in it (SQuAD normalisation:
   lowercase, no punctuation or articles), and SQuAD token F1 against the gold answer.
6. The answer path's time per question as the web process runs it (question embedding, ranking with the
   stored sentence vectors, answer selection, short answer; no caches, no generation) over the first
   `--latency` questions: mean and p95, the LM tie-break included where it runs. Not in it: reading the
   passages and the top 3 passages' sentence vectors from the database (here they are in memory).
   `--generate N` also runs the tutor model's explanation for the first N questions (slow on CPU) and
   reports the same two figures for "sentence + explanation".

Run (about 10 minutes on 2 cores, half of it the LM tie-break):

    .venv/bin/python bench/tutor_retrieval.py [--data ../shared/data/xquad_en_squad11_dev_subset] [--limit N]

Exit code 2 means the data folder is missing.
"""

import argparse
import hashlib
import json
import re
import statistics
import string
import sys
import time
from collections import Counter
from pathlib import Path

import _common  # bench/ is sys.path[0] when this file runs as a script

DEFAULT_DATA = _common.REPO.parent / "shared" / "data" / "xquad_en_squad11_dev_subset"
TOP = 20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with xquad.en.json")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N questions (default all)")
    parser.add_argument("--latency", type=int, default=100,
                        help="time the uncached answer path on the first N questions (default 100)")
    parser.add_argument("--generate", type=int, default=0,
                        help="also generate the tutor model's explanation for the first N questions (default 0)")
    parser.add_argument("--no-likelihood", action="store_true",
                        help="leave the tutor LM's tie-break out of the app's ranking (faster; not what the app runs)")
    parser.add_argument("--threads", type=int, default=_common.DEFAULT_THREADS, help="torch threads (default 2)")
    return parser.parse_args(argv)


def squad_normalize(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = squad_normalize(prediction).split(), squad_normalize(gold).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if not pred or not ref or same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, gold: str) -> bool:
    return bool(squad_normalize(gold)) and f" {squad_normalize(gold)} " in f" {squad_normalize(prediction)} "


def is_dev(context: str) -> bool:
    """The stable half a paragraph falls in: dev (tuning) when the first byte of its SHA-256 is even."""
    return hashlib.sha256(context.encode("utf-8")).digest()[0] % 2 == 0


def ranks_report(ranked_documents: list[list[int]], gold: list[int]) -> dict:
    r1 = r5 = rr = 0.0
    for docs, g in zip(ranked_documents, gold, strict=True):
        seen = list(dict.fromkeys(docs))
        if seen[:1] == [g]:
            r1 += 1
        if g in seen[:5]:
            r5 += 1
        if g in seen[:TOP]:
            rr += 1 / (seen.index(g) + 1)
    n = len(gold)
    return {"recall@1": round(r1 / n, 4), "recall@5": round(r5 / n, 4), "mrr": round(rr / n, 4)}


def answers_report(texts: list[str], golds: list[str]) -> dict:
    n = len(golds) or 1
    return {"gold_contained": round(sum(map(contains, texts, golds)) / n, 4),
            "token_f1": round(sum(map(token_f1, texts, golds)) / n, 4)}


def halves(items: list, dev: list[bool]) -> dict[str, list]:
    """The items of each half and of the whole set, in the order reported (a half with no items is left out)."""
    groups = {"dev (tuning)": [x for x, d in zip(items, dev, strict=True) if d],
              "test": [x for x, d in zip(items, dev, strict=True) if not d], "all": items}
    return {name: group for name, group in groups.items() if group}


def load(path: Path):
    """Passages (unsaved MaterialChunk objects) and (question, gold answer, gold document, is_dev) tuples."""
    from education.models import CourseMaterial, MaterialChunk
    from education.services.material import chunk_spans

    data = json.loads(path.read_text(encoding="utf-8"))
    chunks, questions, doc = [], [], 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            doc += 1
            material = CourseMaterial(pk=doc, title=article["title"], kind="text", text=paragraph["context"])
            for position, span in enumerate(chunk_spans(material.text)):
                chunks.append(MaterialChunk(pk=len(chunks) + 1, material=material, position=position,
                                            text=material.text[span.char_start:span.char_end], heading="",
                                            char_start=span.char_start, char_end=span.char_end))
            dev = is_dev(paragraph["context"])
            questions.extend((qa["question"], qa["answers"][0]["text"], doc, dev) for qa in paragraph["qas"])
    return chunks, questions


def answer_path_seconds(questions, chunks, embed, likelihood, *, count: int) -> list[float]:
    """Seconds per question of what the web process runs: embed the question, rank with the stored sentence
    vectors (`embed` is only the fallback for passages without them: none here) and the LM tie-break where the
    top two are a close call, select, extract."""
    from education.services import retrieval, short_answer, tutor

    seconds = []
    for question, *_ in questions[:count]:
        started = time.perf_counter()
        result = retrieval.rank(question, chunks, question_vector=embed([question])[0], k=tutor.PASSAGES_CITED,
                                embed=embed, likelihood=likelihood)
        selected = tutor.answer_select(result) if tutor.is_supported(result) else None
        if selected:
            short_answer.short_answer_extract(question, selected.sentence)
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    path = args.data / "xquad.en.json"
    if _common.missing_data("tutor_retrieval", args.data, [path.name]):
        return 2
    _common.setup_django()
    _common.set_threads(args.threads)
    import numpy as np

    from education.services import retrieval, short_answer, tutor
    from education.services.material import passages_embed
    from mlcore import runtime, specs

    chunks, questions = load(path)
    if args.limit:
        questions = questions[: args.limit]
    docs = len({c.material.pk for c in chunks})
    dev = [d for *_, d in questions]
    print(f"{docs} paragraphs as {len(chunks)} passages; {len(questions)} questions "
          f"({sum(dev)} dev, {len(dev) - sum(dev)} test)")

    encoder = specs.resolve(specs.encoder_spec())

    def embed(texts):
        return runtime.embed(encoder, texts)

    lm = None if args.no_likelihood else specs.resolve(specs.lm_spec())
    likelihood_calls = []

    def likelihood(contexts, continuations):
        started = time.perf_counter()
        values = runtime.continuation_logprobs(lm, list(zip(contexts, continuations, strict=True)))
        likelihood_calls.append(time.perf_counter() - started)
        return values

    started = time.perf_counter()
    passages_embed(chunks, embed=embed)
    question_vectors = embed([q for q, *_ in questions])
    embed_s = time.perf_counter() - started
    matrix = np.stack([np.frombuffer(c.embedding, dtype=np.float32) for c in chunks])
    doc_of = [c.material.pk for c in chunks]
    bm25 = retrieval.BM25([retrieval.tokenize(f"{c.heading} {c.text}") for c in chunks])
    term_rerank_only = (1.0, 0.0, 0.0)  # the sentence rerank's weights that keep the term rerank's order

    names = ["dense (MiniLM cosine)", "BM25", "hybrid (min-max)", "hybrid + term rerank",
             "+ best-sentence rerank (the app before the LM tie-break)",
             "+ LM tie-break (the app)" if lm else "+ LM tie-break (left out: --no-likelihood)"]
    rankings = {name: [] for name in names}
    asked_lm = []  # per question: did the app's ranking ask the LM (a close call between the top two)?
    answers, started = [], time.perf_counter()
    for (question, *_), qv in zip(questions, question_vectors, strict=True):
        dense = (matrix @ np.asarray(qv, dtype=np.float32)).tolist()
        lexical = bm25.scores(retrieval.tokenize(question))
        fused = [0.5 * a + 0.5 * b for a, b in zip(retrieval.min_max(lexical), retrieval.min_max(dense), strict=True)]
        for name, scores in zip(names[:3], (dense, lexical, fused), strict=True):
            order = sorted(range(len(chunks)), key=lambda i, s=scores: -s[i])[:TOP]
            rankings[name].append([doc_of[i] for i in order])
        weights, retrieval.SENTENCE_WEIGHTS = retrieval.SENTENCE_WEIGHTS, term_rerank_only
        before = retrieval.rank(question, chunks, question_vector=qv, k=TOP)
        retrieval.SENTENCE_WEIGHTS = weights
        rankings[names[3]].append([p.chunk.material.pk for p in before.passages])
        result = retrieval.rank(question, chunks, question_vector=qv, k=TOP, embed=embed)
        rankings[names[4]].append([p.chunk.material.pk for p in result.passages])
        if lm:  # the last step of `rank`, on the ranking just recorded
            calls = len(likelihood_calls)
            result.passages = retrieval.likelihood_rerank(result.passages, question=question, likelihood=likelihood)
            asked_lm.append(len(likelihood_calls) > calls)
        rankings[names[5]].append([p.chunk.material.pk for p in result.passages])
        selected = tutor.answer_select(result) if tutor.is_supported(result) else None
        short = short_answer.short_answer_extract(question, selected.sentence) if selected else ""
        answers.append((selected, short, result))
    rank_s = time.perf_counter() - started

    report = {"retrieval": {}, "answers": {}, "split": "paragraphs by SHA-256 of the text; tuned on dev only"}
    gold_docs, golds = [q[2] for q in questions], [q[1] for q in questions]
    rows = []
    for name, ranked in rankings.items():
        report["retrieval"][name] = {}
        for half, (r, g) in _zip_halves(ranked, gold_docs, dev).items():
            figures = ranks_report(r, g)
            report["retrieval"][name][half] = figures
            rows.append([name, half, f"{figures['recall@1']:.3f}", f"{figures['recall@5']:.3f}",
                         f"{figures['mrr']:.3f}"])
    print()
    print(_common.table(["retrieval", "questions", "R@1", "R@5", "MRR"], rows))

    sentence_texts = [s.sentence if s else "" for s, _, _ in answers]
    short_texts = [short for _, short, _ in answers]
    readings = {"short answer (marked in the sentence)": short_texts,
                "selected sentence (what the student reads)": sentence_texts}
    refused = {half: sum(1 for s in items if not s) for half, items in halves(sentence_texts, dev).items()}
    answer_rows = []
    for name, texts in readings.items():
        report["answers"][name] = {}
        for half, (t, g) in _zip_halves(texts, golds, dev).items():
            figures = answers_report(t, g)
            report["answers"][name][half] = figures
            answer_rows.append([name, half, f"{figures['gold_contained']:.3f}", f"{figures['token_f1']:.3f}"])
    report["answers"]["not_in_material"] = refused

    if args.generate:
        from mlcore import api as ml

        texts = []
        read = readings["selected sentence (what the student reads)"]
        for (question, *_), (selected, _, result), text in zip(questions, answers, read[: args.generate],
                                                               strict=False):
            if selected:
                try:
                    text += " " + tutor.explanation_generate(question, result.passages[:3], selected)
                except ml.NoActiveVersion:
                    pass
            texts.append(text)
        figures = answers_report(texts, golds[: args.generate])
        label = f"sentence + generated explanation (first {len(texts)})"
        report["answers"][label] = figures
        answer_rows.append([label, "first questions", f"{figures['gold_contained']:.3f}", f"{figures['token_f1']:.3f}"])
    print()
    print(_common.table(["answer", "questions", "gold answer contained", "token F1"], answer_rows))
    print(f"not in material (answerable questions the tutor declined): {refused}")

    lm_seconds = sum(likelihood_calls)
    if lm:
        report["likelihood_tie_break"] = {half: {"questions": sum(a), "share": round(sum(a) / len(a), 4)}
                                          for half, a in halves(asked_lm, dev).items()}
        report["likelihood_tie_break"]["seconds"] = round(lm_seconds, 1)
        print(f"LM tie-break asked for {report['likelihood_tie_break']}: {lm_seconds:.1f} s "
              f"({lm_seconds / max(1, len(likelihood_calls)):.2f} s a question that asked)")
    seconds = answer_path_seconds(questions, chunks, embed, likelihood if lm else None,
                                  count=args.latency) if args.latency else []
    if seconds:
        p95 = sorted(seconds)[max(0, round(0.95 * len(seconds)) - 1)]
        report["answer_path_ms"] = {"questions": len(seconds), "mean": round(1000 * statistics.mean(seconds), 1),
                                    "p95": round(1000 * p95, 1), "load_average": _common.load_average()}
        print(f"answer path (uncached, as the web process runs it) over {len(seconds)} questions: "
              f"mean {1000 * statistics.mean(seconds):.0f} ms, p95 {1000 * p95:.0f} ms "
              f"(load average {_common.load_average()[0]:.1f})")
    print(f"\nembedding (passages, their sentences, questions) {embed_s:.1f} s; ranking (5 ways) + answer "
          f"selection {rank_s:.1f} s ({1000 * rank_s / len(questions):.1f} ms a question over {len(chunks)} passages)")
    report.update({"questions": len(questions), "passages": len(chunks), "paragraphs": docs,
                   "embed_seconds": round(embed_s, 1), "rank_seconds": round(rank_s, 1),
                   "machine": _common.machine(args.threads)})
    print(f"saved {_common.write_result('tutor_retrieval', report)}")
    return 0


def _zip_halves(items: list, golds: list, dev: list[bool]) -> dict[str, tuple[list, list]]:
    ours, theirs = halves(items, dev), halves(golds, dev)
    return {half: (ours[half], theirs[half]) for half in ours}


if __name__ == "__main__":
    sys.exit(main())
