from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from finance import seed
from mlcore.api import ModelNotReady


class Command(BaseCommand):
    help = "Train the seed sentiment model if none is active; with --demo also load the demo universe."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Load the demo companies, headlines and prices")

    def handle(self, *args, demo, **options):
        try:
            seed.seed_model_ensure(say=self.stdout.write)
        except ModelNotReady as exc:
            raise CommandError(str(exc)) from exc
        if demo:
            if not settings.PARLANCE_DEMO_ALLOWED:
                raise CommandError("Demo data is never loaded on a production install.")
            seed.demo_universe_load(say=self.stdout.write)
            seed.demo_articles_score(say=self.stdout.write)
