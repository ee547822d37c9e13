"""Explanation reuse matches the question normalised (`question_key`), on an index: the key is filled for the
messages already asked."""

import hashlib
import unicodedata

from django.db import migrations, models

BATCH = 1000


def question_key(text: str) -> str:
    # education.services.tutor.question_key as of this migration (a migration does not follow later changes).
    normal = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    normal = " ".join(normal.split()).rstrip("?.! ")
    return hashlib.sha256(normal.encode()).hexdigest()


def fill_question_keys(apps, schema_editor):
    TutorMessage = apps.get_model("education", "TutorMessage")
    batch = []
    for message in TutorMessage.objects.filter(question_key="").only("pk", "question").iterator(chunk_size=BATCH):
        message.question_key = question_key(message.question)
        batch.append(message)
        if len(batch) == BATCH:
            TutorMessage.objects.bulk_update(batch, ["question_key"])
            batch = []
    if batch:
        TutorMessage.objects.bulk_update(batch, ["question_key"])


class Migration(migrations.Migration):

    dependencies = [
        ("education", "0008_tutormessage_explanation_model"),
    ]

    operations = [
        migrations.AddField(
            model_name="tutormessage",
            name="question_key",
            field=models.CharField(
                blank=True, editable=False, max_length=64,
                help_text="sha256 hex of the normalised question (education.services.tutor.question_key), set when "
                          "the message is asked: explanation reuse matches the question on it."),
        ),
        migrations.AddIndex(
            model_name="tutormessage",
            index=models.Index(fields=["question_key", "explanation_model"], name="education_tmessage_reuse"),
        ),
        migrations.RunPython(fill_question_keys, migrations.RunPython.noop),
    ]
