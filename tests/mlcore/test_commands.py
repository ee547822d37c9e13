import pytest
from django.core.management import CommandError, call_command

from mlcore.models import Dataset, ModelVersion, TrainingJob
from tests.mlcore.conftest import sentiment_csv

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sentiment_file(tmp_path):
    path = tmp_path / "sentiment.csv"
    path.write_bytes(sentiment_csv(rows_per_class=20))
    return path


def test_finetune_inline_then_evaluate_and_save(sentiment_file, mlcore_home, tiny_encoder_spec, capsys):
    call_command("finetune", "finance.sentiment", "--data", str(sentiment_file), "--inline", "--activate",
                 "--params", '{"epochs": 2, "batch_size": 8}')
    out = capsys.readouterr().out
    assert "rows kept of 60" in out and "is now active for finance.sentiment" in out
    job = TrainingJob.objects.get()
    assert job.state == "succeeded" and job.worker == "command"
    version = ModelVersion.objects.get(state="active", task="finance.sentiment")

    call_command("evaluate", "finance.sentiment", "--data", str(sentiment_file), "--save")
    out = capsys.readouterr().out
    assert "macro_f1" in out and "accuracy" in out
    version.refresh_from_db()
    [report] = version.metrics["evaluations"]
    assert report["n"] == 60 and report["split"] == "all"


def test_finetune_refuses_a_missing_file(mlcore_home, tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("finetune", "finance.sentiment", "--data", str(tmp_path / "nope.csv"))


def test_finetune_refuses_a_binary_file_and_writes_nothing(mlcore_home, tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    with pytest.raises(CommandError, match="does not look like a text file"):
        call_command("finetune", "finance.sentiment", "--data", str(path))
    assert not Dataset.objects.exists() and not TrainingJob.objects.exists()


def test_finetune_refuses_bad_params(sentiment_file, mlcore_home):
    with pytest.raises(CommandError, match="--params must be a JSON object"):
        call_command("finetune", "finance.sentiment", "--data", str(sentiment_file), "--params", "[1, 2]")


def test_finetune_refuses_a_task_it_cannot_train_yet(sentiment_file, mlcore_home):
    with pytest.raises(CommandError, match="not available yet"):
        call_command("finetune", "education.embed", "--data", str(sentiment_file))


def test_evaluate_without_an_active_version_says_what_to_do(sentiment_file, mlcore_home):
    with pytest.raises(CommandError, match="No active model"):
        call_command("evaluate", "finance.sentiment", "--data", str(sentiment_file))
