"""factory_boy factories, one section per app."""

from __future__ import annotations

import factory
from django.utils import timezone

from digests.models import Topic
from subscriptions.addresses import email_hash
from subscriptions.consent import CONSENT_VERSION
from subscriptions.models import ConsentRecord, Subscriber

# --- subscriptions ---------------------------------------------------------------------------
# TopicFactory is the one subscriptions tests need from digests; if the digests section defines
# its own when the branches merge, keep that one and delete this.


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Topic {n}")
    slug = factory.Sequence(lambda n: f"topic-{n}")
    position = factory.Sequence(lambda n: n)


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
