import time

from django.core.management.base import BaseCommand

from finance.services.rollup import rollup_rebuild


class Command(BaseCommand):
    help = ("Recompute the sentiment rollup the dashboards read, every day of it. Needed only after articles, "
            "mentions or scores were written around the services (SQL, COPY, a restored dump); the services keep "
            "it up to date themselves.")

    def handle(self, *args, **options):
        started = time.perf_counter()
        days = rollup_rebuild()
        self.stdout.write(f"Recomputed the sentiment rollup of {days} days in {time.perf_counter() - started:.1f} s.")
