from django.core.management.base import BaseCommand, CommandError

from education.services.material import sentence_vectors_backfill
from mlcore.api import ModelNotReady


class Command(BaseCommand):
    help = ("Store the sentence vectors of course material embedded before they were kept with its passages "
            "(migration 0010): one task per material on the ml workers. Run once after migrating; without it "
            "the tutor embeds those sentences again for each question (slower answers, the same ones). Safe to "
            "run again.")

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true",
                            help="Embed them in this process instead (a machine without an ml worker)")

    def handle(self, *args, now, **options):
        try:
            result = sentence_vectors_backfill(now=now)
        except ModelNotReady as exc:
            raise CommandError(str(exc)) from exc
        counts = f"{_count(result.passages, 'passage')} in {_count(result.materials, 'material')}"
        if now:
            self.stdout.write(f"education: stored the sentence vectors of {counts}.")
            return
        already = (f"; {_count(result.already_queued, 'material')} already queued" if result.already_queued
                   else "")
        self.stdout.write(f"education: queued the sentence vectors of {counts} on the ml workers{already}.")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
