from django.core.management.base import BaseCommand

from digests.topic_catalog import CATALOG, topics_sync


class Command(BaseCommand):
    help = (
        "Create the topics of digests/data/topics.json that the database lacks "
        "(existing topics are left as editors set them)."
    )

    def handle(self, *args, **options):
        created = topics_sync()
        for slug in created:
            self.stdout.write(f"created topic: {slug}")
        if not created:
            self.stdout.write(f"every topic of {CATALOG.name} exists already")
