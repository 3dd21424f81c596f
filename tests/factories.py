"""factory_boy factories shared by every app's tests."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model

from digests.models import BatchEntry, DailyBatch, Paper, Topic


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"editor{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@paperboy.localhost")
    is_staff = True


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Test topic {n}")
    slug = factory.Sequence(lambda n: f"test-topic-{n}")
    description = "A topic made by a test."
    phrases = factory.LazyAttribute(lambda t: [t.name.lower()])
    position = factory.Sequence(lambda n: 100 + n)


class PaperFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Paper
        django_get_or_create = ["arxiv_id"]

    arxiv_id = factory.Sequence(lambda n: f"2605.{10000 + n}")
    arxiv_version = None
    title = factory.Sequence(lambda n: f"A Paper About Things, Part {n}")
    abstract = "We study things and find that they are interesting."
    authors = factory.LazyFunction(lambda: ["Ada Lovelace", "Alan Turing"])
    published_at = factory.LazyFunction(lambda: dt.datetime(2026, 5, 3, tzinfo=dt.UTC))
    hf_url = factory.LazyAttribute(lambda p: f"https://huggingface.co/papers/{p.arxiv_id}")
    arxiv_url = factory.LazyAttribute(lambda p: f"https://arxiv.org/abs/{p.arxiv_id}")
    pdf_url = factory.LazyAttribute(lambda p: f"https://arxiv.org/pdf/{p.arxiv_id}")
    upvotes = 10


class DailyBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyBatch
        django_get_or_create = ["date"]

    date = factory.Sequence(lambda n: dt.date(2026, 1, 1) + dt.timedelta(days=n))
    source = "file"
    status = DailyBatch.Status.DRAFT


class BatchEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatchEntry

    batch = factory.SubFactory(DailyBatchFactory)
    paper = factory.SubFactory(PaperFactory)
    rank = factory.Sequence(lambda n: n + 1)
    upvotes_at_fetch = factory.LazyAttribute(lambda e: e.paper.upvotes)
