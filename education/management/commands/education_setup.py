from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from education import seed
from education.models import Course
from education.seed_tutor import tutor_demo_ensure
from mlcore.api import ModelNotReady


class Command(BaseCommand):
    help = ("With --demo: load the demo course (two assignments, 30 essays scored with feedback, teacher grades, "
            "calibrated scorers) and the tutor's demo course material. Safe to run again.")

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Load the demo course for the demo users")

    def handle(self, *args, demo, **options):
        if not demo:
            self.stdout.write("education: nothing to set up without --demo (essay scorers are calibrated by "
                              "teachers from the grading page).")
            return
        if not settings.PARLANCE_DEMO_ALLOWED:
            raise CommandError("Demo data is never loaded on a production install.")
        try:
            results = seed.demo_course_load(say=self.stdout.write)
        except (seed.SeedError, ModelNotReady) as exc:
            raise CommandError(str(exc)) from exc
        failed = [title for title, calibration in results.items() if calibration.state != "done"]
        if failed:
            raise CommandError(f"Calibrating {', '.join(failed)} failed; see the Calibration rows in the admin.")
        course = Course.objects.get(teacher__username=seed.DEMO_TEACHER, title=seed.demo_course_title())
        report = tutor_demo_ensure(course=course)
        self.stdout.write(f"education: tutor material — {len(report['created'])} added, "
                          f"{len(report['existing'])} already there, {report['chunks']} passages")
