from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from entertainment import seed


class Command(BaseCommand):
    help = "With --demo, load the demo world (lore, characters, a story, a dialogue tree) for the user `writer`."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Load the demo world for the demo writer")
        parser.add_argument("--user", default="writer", help="Whose world it is (default: writer)")

    def handle(self, *args, demo, user, **options):
        if not demo:
            self.stdout.write("entertainment: nothing to set up without --demo")
            return
        if not settings.PARLANCE_DEMO_ALLOWED:
            raise CommandError("Demo data is never loaded on a production install.")
        try:
            seed.demo_world_load(username=user, say=self.stdout.write)
        except seed.DemoUserMissing as exc:
            raise CommandError(str(exc)) from exc
