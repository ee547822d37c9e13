from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mlcore import api, services
from mlcore.data import DataError
from mlcore.models import TASK_FAMILIES, ModelVersion, Task
from mlcore.selectors import NoActiveVersion, active_version

KIND_FOR_FAMILY = services.DATASET_KIND_FOR_FAMILY


class Command(BaseCommand):
    help = "Evaluate a task's active version (or --version) on a labelled data file."

    def add_arguments(self, parser):
        parser.add_argument("task", choices=[t.value for t in Task])
        parser.add_argument("--data", required=True)
        parser.add_argument("--format", choices=["csv", "jsonl", "text", "phrasebank"], default=None)
        parser.add_argument("--text-column", default="text")
        parser.add_argument("--label-column", default=None)
        parser.add_argument("--target-column", default=None)
        parser.add_argument("--scope", default="")
        parser.add_argument("--model-version", type=int, default=None, help="Version id (default: the active one)")
        parser.add_argument("--split", default="all", choices=["all", "train", "validation", "test"])
        parser.add_argument("--save", action="store_true", help="Store the metrics on the version")

    def handle(self, *args, task, data, **options):
        family = TASK_FAMILIES[Task(task)]
        if family not in KIND_FOR_FAMILY:
            raise CommandError(f"Evaluating {Task(task).label} is not available yet.")
        try:
            version = (ModelVersion.objects.get(pk=options["model_version"], task=task) if options["model_version"]
                       else active_version(task=task, scope=options["scope"]))
        except ModelVersion.DoesNotExist as exc:
            raise CommandError(f"No version {options['version']} for {task}.") from exc
        except NoActiveVersion as exc:
            raise CommandError(str(exc)) from exc
        try:
            with open(data, "rb") as handle:
                raw = handle.read()
            dataset = services.dataset_create(
                name=f"eval: {data.rsplit('/', 1)[-1]}", kind=KIND_FOR_FAMILY[family], data=raw, filename=data,
                fmt=options["format"], text_column=options["text_column"], label_column=options["label_column"],
                target_column=options["target_column"],
            )
        except OSError as exc:
            raise CommandError(f"Cannot read {data}: {exc.strerror}") from exc
        except DataError as exc:
            raise CommandError(str(exc)) from exc
        split = None if options["split"] == "all" else options["split"]
        with tqdm(total=dataset.rows_kept if split is None else dataset.split_counts.get(split, 0), unit="rows") as bar:
            def progress(done, total):
                bar.n = done
                bar.refresh()

            try:
                report = api.evaluate(version, dataset, split=split, progress=progress)
            except services.RegistryError as exc:
                raise CommandError(str(exc)) from exc
        for key, value in report.items():
            self.stdout.write(f"{key:>12}: {value:.4f}" if isinstance(value, float) else f"{key:>12}: {value}")
        if options["save"]:
            services.model_version_record_evaluation(version=version, report=report)
            self.stdout.write(self.style.SUCCESS(f"saved on version {version.pk}"))
