"""The digest a reader steers: what they write, like and dislike changes tomorrow's email.

Real meaning vectors (digests.embedding), real planning, real rendering.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from digests.models import DailyBatch, Topic
from newsletter.models import Delivery, IssueContent
from newsletter.services.issues import issue_create
from newsletter.services.previews import digest_preview
from subscriptions.profiles import feedback_record, profile_update
from tests.factories import (
    BatchEntryFactory,
    DailyBatchFactory,
    PaperFactory,
    SubscriberFactory,
)
from tests.newsletter.conftest import papers_of, tag

pytestmark = pytest.mark.django_db

ROBOTICS = [
    (
        "Dexterous In-Hand Manipulation with Tactile Sensing",
        "A robot hand learns to rotate objects using tactile sensors and reinforcement learning "
        "in simulation, then transfers to a real five-fingered hand.",
    ),
    (
        "Legged Locomotion over Rough Terrain from Proprioception",
        "A quadruped robot learns to walk over stairs and rubble with a policy trained in "
        "simulation and deployed on hardware without fine-tuning.",
    ),
    (
        "Vision-Language-Action Models for Household Robots",
        "We train a robot policy that maps camera images and language instructions to arm "
        "actions, and evaluate it on picking and placing household objects.",
    ),
    (
        "Imitation Learning for Bimanual Robot Assembly",
        "Two robot arms learn to assemble furniture parts from human teleoperated demonstrations "
        "using a diffusion policy.",
    ),
]
LANGUAGE = [
    (
        "Scaling Laws for Mixture-of-Experts Language Models",
        "We measure how the loss of sparse mixture-of-experts language models scales with the "
        "number of experts, parameters and training tokens during pretraining.",
    ),
    (
        "Tokenizer Choice Shapes Multilingual Pretraining",
        "Comparing byte-level and subword tokenizers for large language model pretraining shows "
        "large differences in downstream multilingual performance.",
    ),
    (
        "Long-Context Language Models Forget the Middle",
        "Large language models with long context windows retrieve facts from the start and end "
        "of the prompt far better than from the middle.",
    ),
]


def catalog(slug):
    return Topic.objects.get(slug=slug)  # the shipped topics, as the migration seeds them


def entries(batch, papers_with_topics):
    made = []
    rank = batch.entries.count()
    for papers, topic in papers_with_topics:
        for title, abstract in papers:
            rank += 1
            paper = PaperFactory(title=title, abstract=abstract, upvotes=50)
            tag(paper, topic)
            BatchEntryFactory(batch=batch, paper=paper, rank=rank)
            made.append(paper)
    return made


def test_it_stops_robotics_the_day_after_two_dislikes_on_robotics_papers():
    robotics, llms = catalog("robotics"), catalog("large-language-models")
    reader = SubscriberFactory(topics=[robotics, llms])
    day_one = DailyBatchFactory(date=dt.date(2026, 3, 9), status=DailyBatch.Status.APPROVED)
    disliked = entries(day_one, [(ROBOTICS[:2], robotics)])
    for paper in disliked:
        feedback_record(subscriber=reader, paper=paper, value=-1)

    day_two = DailyBatchFactory(date=dt.date(2026, 3, 10), status=DailyBatch.Status.APPROVED)
    new_robotics = entries(day_two, [(ROBOTICS[2:], robotics)])
    language = entries(day_two, [(LANGUAGE, llms)])
    issue = issue_create(batch=day_two)

    shown = papers_of(Delivery.objects.get(issue=issue, subscriber=reader))
    assert set(shown) == {p.pk for p in language}
    assert not set(shown) & {p.pk for p in new_robotics}

    # Someone with the same topics and no dislikes gets those robotics papers.
    control = SubscriberFactory(topics=[robotics, llms])
    preview = digest_preview(batch=day_two, subscriber=control)
    assert {p.pk for p in new_robotics} <= {pid for pid, _ in preview.selection}


def test_it_surfaces_what_the_reader_wrote_they_work_on_and_says_why():
    robotics, llms = catalog("robotics"), catalog("large-language-models")
    reader = SubscriberFactory(topics=[llms])
    profile_update(
        subscriber=reader,
        interests="legged robots walking on rough terrain",
        follows=[],
        muted=[],
        focus=0,
    )
    batch = DailyBatchFactory(date=dt.date(2026, 3, 10), status=DailyBatch.Status.APPROVED)
    robots = entries(batch, [(ROBOTICS, robotics)])
    entries(batch, [(LANGUAGE, llms)])
    issue = issue_create(batch=batch)

    delivery = Delivery.objects.get(issue=issue, subscriber=reader)
    content = IssueContent.objects.get(issue=issue, key=delivery.content_key)
    selection = dict(content.selection)
    legged = robots[1]
    assert selection[legged.pk] == ["text"]


def test_each_reader_gets_the_number_of_papers_they_chose(settings):
    llms = catalog("large-language-models")
    batch = DailyBatchFactory(date=dt.date(2026, 3, 10), status=DailyBatch.Status.APPROVED)
    many = varied_papers(25)
    entries(batch, [(many, llms)])
    few = SubscriberFactory(topics=[llms], papers_per_email=3)
    usual = SubscriberFactory(topics=[llms])  # the default choice, 10
    most = SubscriberFactory(topics=[llms], papers_per_email=20)
    settings.DIGEST_MAX_PAPERS = 20
    issue = issue_create(batch=batch)

    counts = {
        reader: len(papers_of(Delivery.objects.get(issue=issue, subscriber=reader)))
        for reader in (few, usual, most)
    }
    assert counts == {few: 3, usual: 10, most: 20}


def test_the_operators_cap_bounds_every_readers_choice(settings):
    llms = catalog("large-language-models")
    batch = DailyBatchFactory(date=dt.date(2026, 3, 10), status=DailyBatch.Status.APPROVED)
    many = varied_papers(25)
    entries(batch, [(many, llms)])
    most = SubscriberFactory(topics=[llms], papers_per_email=20)
    settings.DIGEST_MAX_PAPERS = 5
    issue = issue_create(batch=batch)

    assert len(papers_of(Delivery.objects.get(issue=issue, subscriber=most))) == 5


SUBJECTS = (
    "protein folding",
    "galaxy surveys",
    "legal contracts",
    "music generation",
    "weather",
    "chess engines",
    "medical imaging",
    "code repair",
    "speech in noisy rooms",
    "traffic",
    "crop yields",
    "molecule design",
    "sign language",
    "earthquakes",
    "poetry",
    "robot hands",
    "satellite images",
    "tax law",
    "video games",
    "ocean currents",
    "brain signals",
    "circuit layout",
    "bird songs",
    "stock markets",
    "recipes",
)


def varied_papers(count: int) -> list[tuple[str, str]]:
    """Papers on clearly different subjects, so the near-duplicate cap never applies."""
    return [
        (f"A language model for {subject}", f"We apply large language models to {subject}.")
        for subject in SUBJECTS[:count]
    ]


def test_a_reader_who_paused_until_a_date_gets_nothing_before_it_and_the_digest_from_it():
    llms = catalog("large-language-models")
    paused = SubscriberFactory(topics=[llms], paused_until=dt.date(2026, 3, 11))
    reading = SubscriberFactory(topics=[llms])
    before = DailyBatchFactory(date=dt.date(2026, 3, 10), status=DailyBatch.Status.APPROVED)
    entries(before, [(varied_papers(3), llms)])
    with time_machine.travel(dt.datetime(2026, 3, 10, 13, tzinfo=dt.UTC), tick=False):
        issue = issue_create(batch=before)
    assert set(Delivery.objects.filter(issue=issue).values_list("subscriber", flat=True)) == {
        reading.pk
    }

    on_the_day = DailyBatchFactory(date=dt.date(2026, 3, 11), status=DailyBatch.Status.APPROVED)
    entries(on_the_day, [(varied_papers(3), llms)])
    with time_machine.travel(dt.datetime(2026, 3, 11, 13, tzinfo=dt.UTC), tick=False):
        issue = issue_create(batch=on_the_day)
    assert Delivery.objects.filter(issue=issue, subscriber=paused).exists()


def test_a_phrase_an_editor_adds_counts_in_the_next_plan(day_batch):
    """The planner keeps its topic model, and what the model matched in each paper, between
    plans (the due tick plans the same day every few minutes); a phrase an editor adds to a
    topic must count from the next plan on, not from the next process."""
    from newsletter.services.planning import batch_day

    paper = day_batch.papers["v1"]  # tagged Vision only
    paper.title = "Seeing zebra crossings"
    paper.abstract = "Zebra crossings, seen from a moving car, in a new dataset."
    paper.save()
    robotics = day_batch.topics["robotics"]

    def robotics_affinity() -> float:
        day = batch_day(day_batch.batch)
        row = list(day.paper_ids).index(paper.pk)
        return float(day.affinity[row, day.topic_ids.index(robotics.pk)])

    before = robotics_affinity()
    assert robotics_affinity() == before  # the remembered match gives the same answer
    robotics.phrases = [*(robotics.phrases or []), "zebra crossing"]
    robotics.save()

    assert robotics_affinity() > before
