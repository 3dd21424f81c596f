from django.core.management.base import BaseCommand

from config.schedules import schedules_install


class Command(BaseCommand):
    help = "Create the periodic tasks Paperboy needs (existing ones are left as editors set them)."

    def handle(self, *args, **options):
        created = schedules_install()
        for name in created:
            self.stdout.write(f"created schedule: {name}")
        if not created:
            self.stdout.write("schedules already installed")
