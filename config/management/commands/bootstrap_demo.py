from django.core.management.base import BaseCommand

from config.demo import demo_bootstrap


class Command(BaseCommand):
    help = "Set up the local demo: admin login, sample data, schedules (safe to run again)."

    def handle(self, *args, **options):
        demo_bootstrap(self.stdout.write)
