"""Course material: reading uploads, cutting them into passages, embedding them."""

import numpy as np
import pytest

from education.models import CourseMaterial, MaterialChunk
from education.services import material as svc
from tests.education.conftest import TUTOR_CORPUS, tutor_pdf

pytestmark = pytest.mark.django_db


def _paragraphs(n_paragraphs: int, sentences: int = 12) -> str:
    return "\n\n".join(" ".join(f"Paragraph {p} sentence {s} has a few more words in it." for s in range(sentences))
                       for p in range(n_paragraphs))


def test_every_chunk_is_the_document_text_between_its_positions():
    text = _paragraphs(8)
    spans = svc.chunk_spans(text)
    assert len(spans) >= 4
    for span in spans:
        piece = text[span.char_start:span.char_end]
        assert piece == piece.strip() and piece
        assert 100 <= len(piece.split()) <= svc.CHUNK_MAX_WORDS
    # Consecutive passages overlap by a sentence and together cover the whole document.
    assert spans[0].char_start == 0 and spans[-1].char_end == len(text)
    for before, after in zip(spans, spans[1:], strict=False):
        assert after.char_start < before.char_end
        overlap = text[after.char_start:before.char_end]
        assert overlap.startswith("Paragraph") and overlap.endswith(".") and len(overlap.split()) <= 40


def test_markdown_headings_start_passages_and_give_their_path():
    text = TUTOR_CORPUS["Thesis statements"]
    spans = svc.chunk_spans(text, kind="markdown")
    assert [s.heading for s in spans] == ["Thesis statements", "Thesis statements › Revising the thesis"]
    assert text[spans[1].char_start:spans[1].char_end] == (
        "## Revising the thesis\n\nRevise the working thesis when the evidence points somewhere else.")


def test_a_very_long_paragraph_is_cut_at_sentence_ends():
    text = " ".join(f"Sentence number {i} goes on for a while here." for i in range(100))  # 800 words, one line
    spans = svc.chunk_spans(text)
    assert len(spans) >= 4
    for span in spans:
        assert len(text[span.char_start:span.char_end].split()) <= svc.CHUNK_MAX_WORDS
        assert text[span.char_end - 1] == "." and text[span.char_start] == "S"


def test_upload_markdown_creates_the_material_and_its_passages(course, teacher):
    data = TUTOR_CORPUS["Transitions"].encode()
    material = svc.material_upload(course=course, user=teacher, title="", filename="transitions.md", data=data)
    assert (material.title, material.kind, material.state, material.size_bytes) == (
        "transitions", "markdown", "pending", len(data))
    chunks = list(material.chunks.all())
    assert material.chunk_count == len(chunks) == 1
    assert chunks[0].text == material.text[chunks[0].char_start:chunks[0].char_end]
    assert chunks[0].embedding is None


def test_upload_cp1252_text_is_decoded(course, teacher):
    data = "Café au lait – a “quoted” phrase.".encode("cp1252")
    material = svc.material_upload(course=course, user=teacher, title="Notes", filename="notes.txt", data=data)
    assert material.text == "Café au lait – a “quoted” phrase." and material.kind == "text"


def test_pdf_keeps_page_numbers(course, teacher):
    data = tutor_pdf(["A thesis states the claim of the essay.", "Transitions link one idea to the next."])
    material = svc.material_upload(course=course, user=teacher, title="Guide", filename="guide.pdf", data=data)
    assert material.kind == "pdf" and len(material.page_starts) == 2
    assert "thesis states the claim" in material.text and "Transitions link" in material.text
    second = material.text.index("Transitions")
    assert material.page_starts[1] <= second
    spans = svc.chunk_spans(material.text, page_starts=material.page_starts)
    assert [s.page for s in spans] == [1]  # both pages are one short passage, starting on page 1
    long_pages = [" ".join(["Word"] * 150) + ".", " ".join(["Other"] * 150) + "."]
    text, starts = svc.material_read(data=tutor_pdf(long_pages), filename="long.pdf")[1:]
    assert [s.page for s in svc.chunk_spans(text, page_starts=starts)] == [1, 2]


BAD_FILES = [
    ("empty.txt", b"", "is empty"),
    ("blank.md", b"  \n\n ", "is empty"),
    ("binary.txt", bytes(range(256)) * 40, "does not look like a text file"),
    ("image.md", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20, "does not look like a text file"),
    ("paper.txt", b"%PDF-1.4\n...", "PDF file with a text file's name"),
    ("notes.docx", b"PK\x03\x04 zip data", r"upload a plain text \(\.txt\), Markdown \(\.md\) or PDF"),
    ("fake.pdf", b"just some text, not a pdf", "is not a PDF file"),
    ("cut.pdf", tutor_pdf(["Some text on the page."])[:-60], "looks truncated"),
    ("scan.pdf", tutor_pdf(["", ""]), "no text that can be extracted"),
    ("garbled.pdf", b"%PDF-1.4\n1 0 obj\n<< garbage >>\nendobj\ntrailer << /Root 9 0 R >>\n%%EOF\n",
     "could not be read as a PDF|no text that can be extracted"),
]


@pytest.mark.parametrize(("filename", "data", "message"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
def test_bad_files_are_refused_with_a_message_and_leave_no_rows(course, teacher, filename, data, message):
    with pytest.raises(svc.MaterialError, match=message):
        svc.material_upload(course=course, user=teacher, title="", filename=filename, data=data)
    assert not CourseMaterial.objects.exists() and not MaterialChunk.objects.exists()


def test_files_over_ten_megabytes_are_refused(course, teacher):
    with pytest.raises(svc.MaterialError, match="at most 10 MB"):
        svc.material_upload(course=course, user=teacher, title="Big", filename="big.txt",
                            data=b"word " * (2 * 1024 * 1024 + 1))
    assert not CourseMaterial.objects.exists()


def test_a_second_material_with_the_same_title_is_refused(course, teacher):
    svc.material_create(course=course, user=teacher, title="Notes", kind="text", text="Some notes here.")
    with pytest.raises(svc.MaterialError, match="already has material titled"):
        svc.material_create(course=course, user=teacher, title="Notes", kind="text", text="Other notes.")
    assert CourseMaterial.objects.count() == 1 and MaterialChunk.objects.count() == 1


def test_embedding_claims_the_material_once_and_stores_unit_vectors(tutor_materials, tiny_encoder_spec):
    material = tutor_materials["Thesis statements"]
    assert svc.material_embed(material_id=material.pk) == "ready"
    assert svc.material_embed(material_id=material.pk) == "skipped"  # a redelivered task does nothing
    material.refresh_from_db()
    assert (material.state, material.attempts, material.error) == ("ready", 1, "")
    assert material.embedded_at is not None
    for chunk in material.chunks.all():
        vector = np.frombuffer(bytes(chunk.embedding), dtype=np.float32)
        assert vector.shape == (32,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    # The other materials were not touched.
    assert not MaterialChunk.objects.filter(material=tutor_materials["Transitions"], embedding__isnull=False).exists()


def test_a_failed_embedding_is_recorded_and_can_be_retried(tutor_materials, monkeypatch, tiny_encoder_spec):
    material = tutor_materials["Transitions"]
    monkeypatch.setenv("MLCORE_ENCODER", "/nonexistent/encoder")
    assert svc.material_embed(material_id=material.pk) == "failed"
    material.refresh_from_db()
    assert material.state == "failed" and material.error.startswith("Embedding failed:")
    assert svc.material_retry(material=material) is True
    material.refresh_from_db()
    assert material.state == "pending" and material.error == ""
    monkeypatch.setenv("MLCORE_ENCODER", tiny_encoder_spec)
    assert svc.material_embed(material_id=material.pk) == "ready"
    assert svc.material_retry(material=material) is False


def test_a_material_a_lost_worker_left_processing_is_failed_for_retry(tutor_materials, tiny_encoder_spec):
    from datetime import timedelta

    from django.utils import timezone

    stalled, fresh, ready = list(tutor_materials.values())[:3]
    long_ago = timezone.now() - timedelta(minutes=20)
    CourseMaterial.objects.filter(pk=stalled.pk).update(state="processing", processing_since=long_ago)
    CourseMaterial.objects.filter(pk=fresh.pk).update(state="processing", processing_since=timezone.now())
    CourseMaterial.objects.filter(pk=ready.pk).update(state="ready", processing_since=long_ago)
    assert svc.material_embed(material_id=stalled.pk) == "skipped"  # a redelivered task cannot take it over

    assert svc.materials_recover(stale_after=timedelta(minutes=15)) == [stalled.pk]
    stalled.refresh_from_db()
    assert (stalled.state, stalled.error) == ("failed", svc.STALLED_MESSAGE)
    assert CourseMaterial.objects.get(pk=fresh.pk).state == "processing"
    assert CourseMaterial.objects.get(pk=ready.pk).state == "ready"
    assert svc.material_retry(material=stalled) is True
    assert svc.material_embed(material_id=stalled.pk) == "ready"


def test_a_long_material_a_live_worker_is_embedding_is_not_taken_for_stalled(tutor_materials, tiny_encoder_spec,
                                                                            monkeypatch):
    """Each embedded batch moves processing_since, so the backstop never fails a material still being embedded,
    however long the whole material takes."""
    from datetime import timedelta

    from django.utils import timezone

    from mlcore import api as ml

    material = next(m for m in tutor_materials.values() if m.chunk_count >= 2)
    CourseMaterial.objects.filter(pk=material.pk).update(state="pending")
    monkeypatch.setattr(svc, "EMBED_BATCH", 1)
    real_embed, recovered = ml.embed, []

    def embed_slowly(texts):
        if not recovered:  # the first batch took 20 minutes
            CourseMaterial.objects.filter(pk=material.pk).update(
                processing_since=timezone.now() - timedelta(minutes=20))
        else:  # beat's sweep runs while the second batch is embedded
            recovered.append(svc.materials_recover(stale_after=timedelta(minutes=15)))
        recovered.append("batch")
        return real_embed(texts)

    monkeypatch.setattr(ml, "embed", embed_slowly)
    assert svc.material_embed(material_id=material.pk) == "ready"
    assert [] in recovered  # the sweep found nothing stalled
    material.refresh_from_db()
    assert material.state == "ready"



def test_embedding_stores_one_vector_per_sentence_of_each_passage(tutor_materials, tiny_encoder_spec):
    from education.services.retrieval import sentences
    from mlcore import api as ml

    material = tutor_materials["Thesis statements"]
    assert svc.material_embed(material_id=material.pk) == "ready"
    chunks = list(material.chunks.all())
    assert len(chunks) == 2
    for chunk in chunks:
        texts = sentences(chunk.text)
        matrix = np.frombuffer(bytes(chunk.sentence_embeddings), dtype=np.float32).reshape(-1, 32)
        assert matrix.shape == (len(texts), 32) and len(texts) >= 2
        # In sentence order: each row is that sentence's own embedding (the one the tutor would compute).
        np.testing.assert_allclose(matrix, np.asarray(ml.embed(texts), dtype=np.float32), atol=1e-5)
    assert not MaterialChunk.objects.filter(material=tutor_materials["Transitions"],
                                            sentence_embeddings__isnull=False).exists()


# Sentence vectors of material embedded before they were stored (migration 0010)


def _embedded_as_before_0010(material) -> dict[int, bytes]:
    """Embed the material, then drop its sentence vectors as if it had been embedded before they were stored;
    returns the sentence vectors embedding stored, by passage."""
    assert svc.material_embed(material_id=material.pk) == "ready"
    stored = {pk: bytes(v) for pk, v in material.chunks.values_list("pk", "sentence_embeddings")}
    material.chunks.update(sentence_embeddings=None)
    return stored


def _sentence_vectors(material) -> dict[int, bytes | None]:
    return {pk: bytes(v) if v is not None else None
            for pk, v in material.chunks.values_list("pk", "sentence_embeddings")}


def test_sentence_vectors_fill_stores_what_embedding_stores(tutor_materials, tiny_encoder_spec):
    material = tutor_materials["Thesis statements"]
    expected = _embedded_as_before_0010(material)
    passage_vectors = dict(material.chunks.values_list("pk", "embedding"))
    assert len(expected) == 2 and all(expected.values())

    assert svc.sentence_vectors_fill(material_id=material.pk) == 2
    assert _sentence_vectors(material) == expected  # the same bytes
    assert dict(material.chunks.values_list("pk", "embedding")) == passage_vectors  # the passages' are kept
    assert svc.sentence_vectors_fill(material_id=material.pk) == 0  # a second run finds nothing to do
    # Material not embedded yet is left to material_embed.
    assert svc.sentence_vectors_fill(material_id=tutor_materials["Transitions"].pk) == 0
    assert set(_sentence_vectors(tutor_materials["Transitions"]).values()) == {None}


def test_sentence_vectors_fill_embeds_only_the_passages_without_them(tutor_materials, tiny_encoder_spec,
                                                                      monkeypatch):
    from education.services.retrieval import sentences
    from mlcore import api as ml

    material = tutor_materials["Thesis statements"]
    assert svc.material_embed(material_id=material.pk) == "ready"
    first, second = material.chunks.order_by("position")
    expected = _sentence_vectors(material)
    MaterialChunk.objects.filter(pk=first.pk).update(sentence_embeddings=None)
    real_embed, calls = ml.embed, []
    monkeypatch.setattr(ml, "embed", lambda texts: calls.append(list(texts)) or real_embed(texts))

    assert svc.sentence_vectors_fill(material_id=material.pk) == 1
    assert calls == [sentences(first.text)]  # one batch: the first passage's sentences, not its text
    assert _sentence_vectors(material) == expected
    calls.clear()
    assert svc.sentence_vectors_fill(material_id=material.pk) == 0 and calls == []


@pytest.mark.parametrize("state", ["processing", "failed"])
def test_sentence_vectors_fill_leaves_material_being_embedded_or_failed(tutor_materials, tiny_encoder_spec, state):
    from core.models import TaskRun

    material = tutor_materials["Thesis statements"]
    _embedded_as_before_0010(material)
    CourseMaterial.objects.filter(pk=material.pk).update(state=state)
    assert svc.sentence_vectors_fill(material_id=material.pk) == 0
    assert set(_sentence_vectors(material).values()) == {None}
    assert svc.sentence_vectors_backfill() == svc.SentenceVectorsBackfill(materials=0, passages=0)
    assert not TaskRun.objects.filter(task=svc.SENTENCE_VECTORS_TASK).exists()


@pytest.mark.parametrize("meanwhile", ["vectors stored", "material claimed"])
def test_sentence_vectors_fill_keeps_what_changed_while_it_embedded(tutor_materials, tiny_encoder_spec,
                                                                   monkeypatch, meanwhile):
    from mlcore import api as ml

    material = tutor_materials["Thesis statements"]
    expected = _embedded_as_before_0010(material)
    first, second = material.chunks.order_by("position")
    real_embed = ml.embed

    def embed_while_another_run_writes(texts):
        if meanwhile == "vectors stored":
            MaterialChunk.objects.filter(pk=first.pk).update(sentence_embeddings=b"stored meanwhile")
        else:  # a re-embedding took the material over (its new vectors are still to come)
            CourseMaterial.objects.filter(pk=material.pk).update(state="processing")
        return real_embed(texts)

    monkeypatch.setattr(ml, "embed", embed_while_another_run_writes)
    filled = svc.sentence_vectors_fill(material_id=material.pk)
    if meanwhile == "vectors stored":
        assert filled == 1
        assert _sentence_vectors(material) == {first.pk: b"stored meanwhile", second.pk: expected[second.pk]}
    else:
        assert filled == 0 and set(_sentence_vectors(material).values()) == {None}


def test_the_upgrade_command_queues_one_fill_per_material_without_sentence_vectors(tutor_materials,
                                                                                   tiny_encoder_spec):
    from io import StringIO

    from django.core.management import call_command

    from core.celery import app as celery_app
    from core.models import TaskRun

    thesis, transitions, citing = (tutor_materials[t] for t in ("Thesis statements", "Transitions", "Citing sources"))
    _embedded_as_before_0010(thesis)
    _embedded_as_before_0010(transitions)
    assert svc.material_embed(material_id=citing.pk) == "ready"  # embedded with its sentence vectors
    out = StringIO()
    call_command("education_sentence_vectors", stdout=out)
    assert out.getvalue() == "education: queued the sentence vectors of 3 passages in 2 materials on the ml workers.\n"
    runs = TaskRun.objects.filter(task=svc.SENTENCE_VECTORS_TASK)
    assert sorted((r.args, r.state) for r in runs) == [([thesis.pk], "queued"), ([transitions.pk], "queued")]
    assert celery_app.amqp.router.route({}, svc.SENTENCE_VECTORS_TASK)["queue"].name == "ml"

    out = StringIO()
    call_command("education_sentence_vectors", stdout=out)  # the runs are still queued: nothing is queued twice
    assert out.getvalue() == ("education: queued the sentence vectors of 0 passages in 0 materials on the ml "
                              "workers; 2 materials already queued.\n")
    assert runs.count() == 2
    assert set(_sentence_vectors(thesis).values()) == {None}  # the workers fill them


def test_the_upgrade_command_now_fills_them_in_its_own_process(tutor_materials, tiny_encoder_spec):
    from io import StringIO

    from django.core.management import call_command

    from core.models import TaskRun

    thesis, transitions = tutor_materials["Thesis statements"], tutor_materials["Transitions"]
    expected = {**_embedded_as_before_0010(thesis), **_embedded_as_before_0010(transitions)}
    out = StringIO()
    call_command("education_sentence_vectors", "--now", stdout=out)
    assert out.getvalue() == "education: stored the sentence vectors of 3 passages in 2 materials.\n"
    assert {**_sentence_vectors(thesis), **_sentence_vectors(transitions)} == expected
    assert not TaskRun.objects.filter(task=svc.SENTENCE_VECTORS_TASK).exists()
    out = StringIO()
    call_command("education_sentence_vectors", "--now", stdout=out)
    assert out.getvalue() == "education: stored the sentence vectors of 0 passages in 0 materials.\n"
