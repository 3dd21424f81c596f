"""factory_boy factories shared by every app's tests."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from digests.models import BatchEntry, DailyBatch, Paper, Topic
from subscriptions.addresses import email_hash
from subscriptions.consent import CONSENT_VERSION
from subscriptions.models import ConsentRecord, Profile, Subscriber


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


# Papers about different things: ranking groups near-duplicates (alike in meaning), so test
# papers that all said the same sentence would be one paper to it.
ABSTRACTS = (
    "We train a transformer policy on robot demonstrations and report grasp success on real arms.",
    "A benchmark of multi-step web tasks measures how often tool-using agents finish their tasks.",
    "Diffusion models for video are distilled into four sampling steps with little quality lost.",
    "We prove a generalization bound for overparameterized networks trained with gradient descent.",
    "Speech recognition in noisy call centres improves when training adds synthetic noise.",
    "A new dataset of clinical notes supports the evaluation of medical question answering.",
    "Quantizing attention to four bits halves serving latency for long-context language models.",
    "Graph neural networks forecast traffic flow on road networks better than recurrent baselines.",
    "Preference optimization without a reward model aligns chat assistants with human judgments.",
    "Jailbreak prompts are detected by a small classifier that reads hidden states.",
    "Self-supervised pretraining on satellite images helps segment crops in unlabelled regions.",
    "An agent learns to cook in a simulated kitchen from language instructions and sparse rewards.",
)


class PaperFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Paper
        django_get_or_create = ["arxiv_id"]

    arxiv_id = factory.Sequence(lambda n: f"2605.{10000 + n}")
    arxiv_version = None
    title = factory.Sequence(lambda n: f"A Paper About Things, Part {n}")
    abstract = factory.Sequence(lambda n: ABSTRACTS[n % len(ABSTRACTS)])
    authors = factory.LazyFunction(lambda: ["Ada Lovelace", "Alan Turing"])
    published_at = factory.LazyFunction(lambda: dt.datetime(2026, 5, 3, tzinfo=dt.UTC))
    hf_url = factory.LazyAttribute(lambda p: f"https://huggingface.co/papers/{p.arxiv_id}")
    arxiv_url = factory.LazyAttribute(lambda p: f"https://arxiv.org/abs/{p.arxiv_id}")
    pdf_url = factory.LazyAttribute(lambda p: f"https://arxiv.org/pdf/{p.arxiv_id}")
    upvotes = 10


class DailyBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyBatch
        django_get_or_create = ["date", "kind"]

    date = factory.Sequence(lambda n: dt.date(2026, 1, 1) + dt.timedelta(days=n))
    kind = DailyBatch.Kind.DAILY
    source = "file"
    status = DailyBatch.Status.DRAFT


class BatchEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatchEntry

    batch = factory.SubFactory(DailyBatchFactory)
    paper = factory.SubFactory(PaperFactory)
    rank = factory.Sequence(lambda n: n + 1)
    upvotes_at_fetch = factory.LazyAttribute(lambda e: e.paper.upvotes)


# --- subscriptions ---------------------------------------------------------------------------


class SubscriberFactory(factory.django.DjangoModelFactory):
    """An active, confirmed subscriber with one topic and a confirmed consent record."""

    class Meta:
        model = Subscriber
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"reader{n}@example.org")
    email_hash = factory.LazyAttribute(lambda o: email_hash(o.email))
    status = Subscriber.Status.ACTIVE
    created_at = factory.LazyFunction(timezone.now)
    confirmed_at = factory.LazyAttribute(
        lambda o: o.created_at if o.status != Subscriber.Status.PENDING else None
    )

    @factory.post_generation
    def topics(self, create, extracted, **kwargs):
        if create:
            self.topics.set(extracted if extracted is not None else [TopicFactory()])

    @factory.post_generation
    def consent(self, create, extracted, **kwargs):
        if create and extracted is not False:
            ConsentRecordFactory(
                subscriber=self,
                requested_at=self.created_at,
                confirmed_at=self.confirmed_at,
                topics=[t.slug for t in self.topics.all()],
            )

    @factory.post_generation
    def profile(self, create, extracted, **kwargs):
        # profile__interests="...", profile__follows=[...]: set fields as stored (no vector;
        # subscriptions.profiles computes that). profile=False: none, like a row from before.
        if create and extracted is not False:
            Profile.objects.create(subscriber=self, **kwargs)

    class Params:
        pending = factory.Trait(status=Subscriber.Status.PENDING)


class ConsentRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentRecord

    subscriber = factory.SubFactory(SubscriberFactory, consent=False)
    requested_at = factory.LazyFunction(timezone.now)
    ip = "192.0.2.10"
    user_agent = "Mozilla/5.0 (factory)"
    form_version = CONSENT_VERSION
