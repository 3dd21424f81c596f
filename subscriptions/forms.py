from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from digests.models import Topic
from subscriptions.addresses import MAX_LENGTH, email_normalize
from subscriptions.consent import CONSENT_TEXTS


def _topic_choices():
    return Topic.objects.filter(is_active=True).order_by("position", "name")


class TopicsField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, obj: Topic) -> str:
        return obj.name


class SubscribeForm(forms.Form):
    email = forms.CharField(
        label="Email address",
        max_length=MAX_LENGTH + 20,  # room for surrounding spaces; the real limit is checked below
        widget=forms.EmailInput(attrs={"autocomplete": "email", "required": True}),
    )
    topics = TopicsField(
        queryset=Topic.objects.none(),
        label="Topics",
        error_messages={"required": "Choose at least one topic."},
    )
    consent_version = forms.CharField(widget=forms.HiddenInput)
    # The honeypot: hidden from people by CSS and from assistive technology by aria-hidden;
    # form-filling bots tend to fill every field.
    website = forms.CharField(required=False, label="Leave this field empty")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topics"].queryset = _topic_choices()

    def clean_email(self) -> str:
        return email_normalize(self.cleaned_data["email"])

    def clean_consent_version(self) -> str:
        version = self.cleaned_data["consent_version"]
        if version not in CONSENT_TEXTS:
            raise ValidationError("This page was out of date; please review it and submit again.")
        return version

    def is_bot(self) -> bool:
        return bool(self.data.get("website", "").strip())


class TopicsForm(forms.Form):
    topics = TopicsField(
        queryset=Topic.objects.none(),
        label="Topics",
        error_messages={"required": "Choose at least one topic."},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topics"].queryset = _topic_choices()


class EraseForm(forms.Form):
    confirm = forms.BooleanField(
        label="I understand that this deletes my subscription and data for good.",
        error_messages={"required": "Tick the box to confirm."},
    )
