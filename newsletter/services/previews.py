"""Previews: exactly what one subscriber would get for a batch, and sending it to an editor."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives

from digests.models import DailyBatch, PaperTopic
from newsletter import ranking
from newsletter.composition import messages_per_recipient
from newsletter.models import Delivery
from newsletter.rendering import IssueRenderer
from newsletter.services.planning import (
    batch_day,
    papers_already_sent,
    readers_for,
    selections_plan,
)
from newsletter.services.sending import digest_message
from subscriptions.models import Subscriber


@dataclass(frozen=True)
class DigestPreview:
    """Exactly the message one subscriber gets for a batch, merge fields filled in."""

    subject: str
    html: str
    text: str
    headers: dict[str, str]
    selection: list

    @property
    def size_kb(self) -> float:
        return round(len(self.html.encode()) / 1024, 1)


def digest_preview(*, batch: DailyBatch, subscriber: Subscriber) -> DigestPreview | None:
    """What `subscriber` would get for `batch` now; None when nothing is for them.

    Built by the same functions as a real send (selection, rendering, merge fields), so the
    previewed HTML is byte-for-byte the HTML the subscriber receives.
    """
    the_day = batch_day(batch)
    excluded = papers_already_sent(
        batch, [int(p) for p in the_day.paper_ids], subscriber_id=subscriber.pk
    )
    [(_, selection)] = selections_plan(the_day, readers_for(excluded, subscriber_id=subscriber.pk))
    if not selection:
        return None
    delivery = Delivery(subscriber=subscriber, content_key="")
    delivery.pk = 0  # never saved; only fills the merge metadata
    message = digest_message(IssueRenderer(batch), [delivery], selection=selection)
    [(_, personal)] = messages_per_recipient(message)
    return DigestPreview(
        subject=personal.subject,
        html=personal.alternatives[0][0],
        text=personal.body,
        headers=dict(personal.extra_headers),
        selection=selection,
    )


def digest_preview_send(*, preview: DigestPreview, to: str) -> None:
    """Send a preview to an editor, marked as a test so it is not mistaken for the real one.

    Without the List-Unsubscribe headers: they carry the previewed subscriber's one-click
    link, and the editor's mail client offering "Unsubscribe" would unsubscribe that person.
    """
    headers = {k: v for k, v in preview.headers.items() if not k.lower().startswith("list-unsub")}
    message = EmailMultiAlternatives(
        subject=f"[Test] {preview.subject}", body=preview.text, to=[to], headers=headers
    )
    message.attach_alternative(preview.html, "text/html")
    message.send()


def preview_pins_outside_interests(*, preview: DigestPreview, subscriber: Subscriber) -> list[int]:
    """The pinned papers of a preview that none of the subscriber's topics matches: they are
    in the email only because they are pinned, and the editor is told so."""
    pinned = [pid for pid, reason in preview.selection if reason and reason[0] == ranking.PINNED]
    if not pinned:
        return []
    followed = set(subscriber.topics.values_list("pk", flat=True))
    matching = set(
        PaperTopic.objects.filter(paper_id__in=pinned, topic_id__in=followed).values_list(
            "paper_id", flat=True
        )
    )
    return [pid for pid in pinned if pid not in matching]


def preview_recipient_refusal(*, user, address: str) -> str:
    """Why `user` may not send a test digest to `address`, or "" when they may.

    Allowed: their own address, another staff account's (the team, as an admin set it up),
    and settings.PREVIEW_TEST_RECIPIENTS. A test carries a subscriber's selection, so it must
    not go to anyone outside the team.
    """
    address = (address or "").strip().lower()
    if not address:
        return "Give an address to send the test to."
    if address == (user.email or "").strip().lower() or address in settings.PREVIEW_TEST_RECIPIENTS:
        return ""
    staff = get_user_model().objects.filter(is_active=True, is_staff=True, email__iexact=address)
    if staff.exists():
        return ""
    return (
        f"Not sent: {address} is not allowed for test sends: only your own address, a staff "
        "account's, or one an admin listed in PREVIEW_TEST_RECIPIENTS."
    )
