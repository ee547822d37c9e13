import json
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mlcore import services
from mlcore.data import DataError
from mlcore.models import TASK_FAMILIES, Task, TrainingJob

KIND_FOR_FAMILY = services.DATASET_KIND_FOR_FAMILY


class Command(BaseCommand):
    help = "Fine-tune a task's model on a data file, showing progress (on the ml workers, or --inline here)."

    def add_arguments(self, parser):
        parser.add_argument("task", choices=[t.value for t in Task])
        parser.add_argument("--data", required=True, help="CSV, JSONL, or PhraseBank file")
        parser.add_argument("--format", choices=["csv", "jsonl", "text", "phrasebank"], default=None)
        parser.add_argument("--text-column", default="text")
        parser.add_argument("--label-column", default=None)
        parser.add_argument("--target-column", default=None)
        parser.add_argument("--scope", default="", help='e.g. "assignment:12" for a per-assignment scorer')
        parser.add_argument("--name", default=None, help="Dataset name (default: the file name)")
        parser.add_argument("--params", default="{}", help='JSON hyper-parameters, e.g. \'{"epochs": 3}\'')
        parser.add_argument("--inline", action="store_true", help="Train in this process instead of on a worker")
        parser.add_argument("--activate", action="store_true", help="Activate the new version when done")

    def handle(self, *args, task, data, inline, activate, **options):
        family = TASK_FAMILIES[Task(task)]
        if family not in KIND_FOR_FAMILY:
            raise CommandError(f"Fine-tuning {Task(task).label} is not available yet.")
        try:
            params = json.loads(options["params"])
            if not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise CommandError(f"--params must be a JSON object: {exc}") from exc
        try:
            with open(data, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise CommandError(f"Cannot read {data}: {exc.strerror}") from exc
        try:
            dataset = services.dataset_create(
                name=options["name"] or data.rsplit("/", 1)[-1], kind=KIND_FOR_FAMILY[family], data=raw, filename=data,
                fmt=options["format"], text_column=options["text_column"], label_column=options["label_column"],
                target_column=options["target_column"],
            )
        except DataError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"dataset {dataset.pk}: {dataset.rows_kept} rows kept of {dataset.rows_read} "
            f"({dataset.rows_rejected} rejected, {dataset.exact_duplicates} exact and "
            f"{dataset.near_duplicates} near duplicates); splits {dataset.split_counts}"
        )
        try:
            job = services.finetune_start(task=task, dataset=dataset, params=params, scope=options["scope"],
                                          enqueue=not inline)
        except services.RegistryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"job {job.pk} {'running here' if inline else 'queued on the ml workers'}")
        if inline:
            worker = threading.Thread(target=services.finetune_run, kwargs={"job_id": job.pk, "worker": "command"})
            worker.start()
        job = self._follow(job)
        if job.state != TrainingJob.State.SUCCEEDED:
            raise CommandError(f"job {job.pk} {job.state}: {job.error or 'see its log'}\n{job.log_tail[-2000:]}")
        version = job.result_version
        self.stdout.write(self.style.SUCCESS(f"version {version.pk} registered: {version.metrics}"))
        if activate:
            services.model_version_activate(version=version)
            self.stdout.write(self.style.SUCCESS(f"version {version.pk} is now active for {task}"))

    def _follow(self, job: TrainingJob) -> TrainingJob:
        bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}] {postfix}")
        try:
            while True:
                job.refresh_from_db()
                bar.n = job.progress
                steps = [h for h in job.history if "loss" in h]
                if steps:
                    bar.set_postfix_str(f"epoch {steps[-1]['epoch']} loss {steps[-1]['loss']:.4f}")
                bar.refresh()
                if not job.is_active:
                    return job
                time.sleep(1)
        finally:
            bar.close()
