"""Explanations are written by an ml worker now: a message left pending by the page-driven flow has no queued run
and would wait forever, so those are cleared (the answer stands without an explanation)."""

from django.db import migrations, models


def clear_unqueued(apps, schema_editor):
    apps.get_model("education", "TutorMessage").objects.filter(explanation_pending=True).update(
        explanation_pending=False)


class Migration(migrations.Migration):

    dependencies = [
        ("education", "0006_tutormessage_explanation_pending"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tutormessage",
            name="explanation_pending",
            field=models.BooleanField(
                default=False, help_text="The answer is shown; an ml worker is writing the explanation."),
        ),
        migrations.RunPython(clear_unqueued, migrations.RunPython.noop),
    ]
