from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from core.services import demo_accounts_ensure


class Command(BaseCommand):
    help = "Create the demo users (one per role, plus admin) and print their credentials."

    def handle(self, *args, **options):
        try:
            accounts = demo_accounts_ensure()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS("Demo accounts (demo only; never on a production install):"))
        for account in accounts:
            self.stdout.write(f"  {account.username:<10} {account.password:<16} {', '.join(account.roles)}")
