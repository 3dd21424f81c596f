"""Transactional emails of the subscription flow.

Each email is three templates under templates/subscriptions/emails/: NAME-subject.txt,
NAME-body-text.txt and NAME-body-html.html, built by one helper (the healthchecks pattern).
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from config.postal import postal_address_lines


def email_build(name: str, *, to: str, context: dict) -> EmailMultiAlternatives:
    context = {"site_url": settings.SITE_URL, "postal_address": postal_address_lines(), **context}
    prefix = f"subscriptions/emails/{name}"
    # A subject is one line whatever the template's whitespace.
    subject = " ".join(render_to_string(f"{prefix}-subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{prefix}-body-text.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        # Tells auto-responders not to answer, and mailbox providers this is transactional.
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string(f"{prefix}-body-html.html", context), "text/html")
    return message
