from django.core.management.base import BaseCommand, CommandError

from mlcore.bootstrap import packaged_models_prepare
from mlcore.services import base_versions_ensure
from mlcore.specs import ModelNotReady


class Command(BaseCommand):
    help = "Prepare the packaged base models (offline, idempotent) and register their versions."

    def handle(self, *args, **options):
        try:
            packaged_models_prepare(say=self.stdout.write)
        except ModelNotReady as exc:
            raise CommandError(str(exc)) from exc
        for version in base_versions_ensure():
            self.stdout.write(f"registered {version}")
        self.stdout.write(self.style.SUCCESS("Base models ready."))
