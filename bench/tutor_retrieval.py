"""Tutor retrieval and answer quality on XQuAD-en (SQuAD v1.1 dev subset): the app's own retrieval code.

Protocol:

1. The 240 context paragraphs become course material (each its own document, cut into passages by
   `education.services.material.chunk_spans`, as an upload would be); the 1,190 questions are the students'
   questions, each with its own paragraph as the gold document.
2. Passages are embedded with the packaged MiniLM (`mlcore.runtime.embed`, what `mlcore.api.embed` runs),
   exactly as the app stores them (heading + text; no headings here).
3. For each question: dense (cosine), BM25, their min-max hybrid, and the app's full ranking
   (`education.services.retrieval.rank`: hybrid + rerank by term coverage and bigram proximity). A passage
   counts as a hit when it belongs to the gold paragraph. Recall@1, recall@5 and MRR (over the top 20).
4. The answer the student reads: the sentence the tutor selects from the top passages
   (`education.services.tutor.answer_select`), or nothing when the tutor says the material does not cover
   the question (`is_supported`). Reported: how often the gold answer string is contained in it
   (SQuAD normalisation: lowercase, no punctuation or articles), and SQuAD token F1 against the gold answer.
   `--generate N` also runs the tutor model's explanation for the first N questions (slow on CPU) and
   reports the same two figures for "sentence + explanation".

Run (about 4 minutes on 2 busy cores: 2 embedding, 2 ranking):

    .venv/bin/python bench/tutor_retrieval.py [--data ../shared/data/xquad_en_squad11_dev_subset] [--limit N]

Exit code 2 means the data folder is missing.
"""

import argparse
import json
import re
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
    parser.add_argument("--generate", type=int, default=0,
                        help="also generate the tutor model's explanation for the first N questions (default 0)")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    path = args.data / "xquad.en.json"
    if _common.missing_data("tutor_retrieval", args.data, [path.name]):
        return 2
    _common.setup_django()
    _common.set_threads(args.threads)
    import numpy as np

    from education.models import CourseMaterial, MaterialChunk
    from education.services import retrieval, tutor
    from education.services.material import chunk_embedding_text, chunk_spans
    from mlcore import runtime, specs

    data = json.loads(path.read_text(encoding="utf-8"))
    chunks, questions = [], []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            doc = len({c.material.pk for c in chunks}) + 1
            material = CourseMaterial(pk=doc, title=article["title"], kind="text", text=paragraph["context"])
            for position, span in enumerate(chunk_spans(material.text)):
                chunks.append(MaterialChunk(pk=len(chunks) + 1, material=material, position=position,
                                            text=material.text[span.char_start:span.char_end], heading="",
                                            char_start=span.char_start, char_end=span.char_end))
            for qa in paragraph["qas"]:
                questions.append((qa["question"], qa["answers"][0]["text"], doc))
    if args.limit:
        questions = questions[: args.limit]
    docs = len({c.material.pk for c in chunks})
    print(f"{docs} paragraphs as {len(chunks)} passages; {len(questions)} questions")

    encoder = specs.resolve(specs.encoder_spec())
    started = time.perf_counter()
    vectors = runtime.embed(encoder, [chunk_embedding_text(c) for c in chunks])
    for chunk, vector in zip(chunks, vectors, strict=True):
        chunk.embedding = np.asarray(vector, dtype=np.float32).tobytes()
    question_vectors = runtime.embed(encoder, [q for q, _, _ in questions])
    embed_s = time.perf_counter() - started
    matrix = np.asarray(vectors, dtype=np.float32)
    doc_of = [c.material.pk for c in chunks]
    bm25 = retrieval.BM25([retrieval.tokenize(f"{c.heading} {c.text}") for c in chunks])

    rankings = {"dense (MiniLM cosine)": [], "BM25": [], "hybrid (min-max)": [], "hybrid + rerank (the app)": []}
    answers, started = [], time.perf_counter()
    for (question, gold, _), qv in zip(questions, question_vectors, strict=True):
        dense = (matrix @ np.asarray(qv, dtype=np.float32)).tolist()
        lexical = bm25.scores(retrieval.tokenize(question))
        fused = [0.5 * a + 0.5 * b for a, b in zip(retrieval.min_max(lexical), retrieval.min_max(dense), strict=True)]
        for name, scores in (("dense (MiniLM cosine)", dense), ("BM25", lexical), ("hybrid (min-max)", fused)):
            order = sorted(range(len(chunks)), key=lambda i, s=scores: -s[i])[:TOP]
            rankings[name].append([doc_of[i] for i in order])
        result = retrieval.rank(question, chunks, question_vector=qv, k=TOP)
        rankings["hybrid + rerank (the app)"].append([p.chunk.material.pk for p in result.passages])
        selected = tutor.answer_select(result) if tutor.is_supported(result) else None
        answers.append((selected, result, question, gold))
    rank_s = time.perf_counter() - started
    gold_docs = [d for _, _, d in questions]

    rows, report = [], {"retrieval": {}, "answers": {}}
    for name, ranked in rankings.items():
        figures = ranks_report(ranked, gold_docs)
        report["retrieval"][name] = figures
        rows.append([name, f"{figures['recall@1']:.3f}", f"{figures['recall@5']:.3f}", f"{figures['mrr']:.3f}"])
    print()
    print(_common.table(["retrieval", "R@1", "R@5", "MRR"], rows))

    shown = [s.sentence if s else "" for s, *_ in answers]
    refused = sum(1 for s, *_ in answers if s is None)
    contained = sum(contains(a, g) for a, (_, _, _, g) in zip(shown, answers, strict=True)) / len(answers)
    f1 = sum(token_f1(a, g) for a, (_, _, _, g) in zip(shown, answers, strict=True)) / len(answers)
    report["answers"]["selected sentence"] = {"gold_contained": round(contained, 4), "token_f1": round(f1, 4),
                                              "not_in_material": refused}
    answer_rows = [["selected sentence (what the student reads)", f"{contained:.3f}", f"{f1:.3f}", refused]]

    if args.generate:
        from django.conf import settings  # noqa: F401  (Django is set up above)

        from mlcore import api as ml

        subset = [a for a in answers[: args.generate]]
        texts = []
        for selected, result, question, _gold in subset:
            text = selected.sentence if selected else ""
            if selected:
                try:
                    text += " " + tutor.explanation_generate(question, result.passages[:3], selected)
                except ml.NoActiveVersion:
                    pass
            texts.append(text)
        golds = [g for *_, g in subset]
        c = sum(contains(t, g) for t, g in zip(texts, golds, strict=True)) / len(subset)
        f = sum(token_f1(t, g) for t, g in zip(texts, golds, strict=True)) / len(subset)
        report["answers"][f"sentence + generated explanation (first {len(subset)})"] = {
            "gold_contained": round(c, 4), "token_f1": round(f, 4)}
        answer_rows.append([f"sentence + generated explanation (first {len(subset)})", f"{c:.3f}", f"{f:.3f}", ""])
    print()
    print(_common.table(["answer", "gold answer contained", "token F1", "not in material"], answer_rows))
    print(f"\nembedding {embed_s:.1f} s; ranking + answer selection {rank_s:.1f} s "
          f"({1000 * rank_s / len(questions):.1f} ms a question over {len(chunks)} passages)")
    report.update({"questions": len(questions), "passages": len(chunks), "paragraphs": docs,
                   "embed_seconds": round(embed_s, 1), "rank_seconds": round(rank_s, 1),
                   "machine": _common.machine(args.threads)})
    print(f"saved {_common.write_result('tutor_retrieval', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
