from __future__ import annotations

from django.core.management.base import BaseCommand

from digests.embedding import MODEL_NAME
from digests.models import Paper
from digests.services import papers_embed

CHUNK = 500


class Command(BaseCommand):
    help = (
        "Store the meaning vector of every paper that lacks one or has one of another model "
        f"(today's: {MODEL_NAME}). Ingest does this for the papers it sees; this is for papers "
        "stored before."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="re-embed every paper, current vectors too"
        )

    def handle(self, *args, **options):
        papers = Paper.objects.order_by("pk")
        if not options["all"]:
            papers = papers.exclude(embedding__isnull=False, embedding_model=MODEL_NAME)
        done = 0
        # In chunks, so memory stays flat however many papers the database holds.
        chunk: list[Paper] = []
        for paper in papers.iterator(chunk_size=CHUNK):
            chunk.append(paper)
            if len(chunk) == CHUNK:
                done += papers_embed(papers=chunk, force=options["all"])
                chunk = []
        done += papers_embed(papers=chunk, force=options["all"])
        self.stdout.write(f"embedded {done} paper(s) with {MODEL_NAME}")
