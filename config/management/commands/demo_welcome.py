from django.core.management.base import BaseCommand

from config.demo import demo_welcome


class Command(BaseCommand):
    help = "Print where the local demo is served, its logins, the outbox and how to stop it."

    def add_arguments(self, parser):
        parser.add_argument("--served", required=True, help="the URL the server listens on")
        parser.add_argument("--logs", default="var/log", help="the folder with the logs")

    def handle(self, *args, **options):
        for line in demo_welcome(served=options["served"], logs=options["logs"]):
            self.stdout.write(line)
