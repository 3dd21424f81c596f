from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from digests.models import Topic
from subscriptions import schedule
from subscriptions.addresses import MAX_LENGTH, email_normalize
from subscriptions.consent import CONSENT_TEXTS
from subscriptions.models import Profile, Subscriber
from subscriptions.profiles import follows_clean, interests_clean, muted_clean


def _topic_choices():
    return Topic.objects.filter(is_active=True).order_by("position", "name")


class TopicsField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, obj: Topic) -> str:
        return obj.name


class LinesField(forms.CharField):
    """A textarea read as one entry a line; `check` turns the lines into the stored list."""

    widget = forms.Textarea(attrs={"rows": 4})

    def __init__(self, *, check, max_lines: int, **kwargs) -> None:
        self.check = check
        # The raw text may hold blank lines and spaces; the real limits are the check's.
        kwargs.setdefault("max_length", max_lines * 120)
        super().__init__(required=False, strip=False, **kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def clean(self, value) -> list[str]:
        text = super().clean(value) or ""
        return self.check(text.splitlines())


def _interests_field() -> forms.CharField:
    return forms.CharField(
        label="What I work on",
        required=False,
        strip=False,
        max_length=Profile.INTERESTS_MAX + 100,  # spaces and line breaks are tidied below
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=(
            "A sentence or two in your own words, e.g. “speech recognition for low-resource "
            f"languages”. At most {Profile.INTERESTS_MAX} characters."
        ),
    )


def _follows_field() -> LinesField:
    return LinesField(
        label="Authors or organizations to follow",
        check=follows_clean,
        max_lines=Profile.FOLLOWS_MAX,
        help_text=f"One a line, at most {Profile.FOLLOWS_MAX}. Their papers always reach you.",
    )


def _muted_field() -> LinesField:
    return LinesField(
        label="Keywords to mute",
        check=muted_clean,
        max_lines=Profile.MUTED_MAX,
        help_text=f"One a line, at most {Profile.MUTED_MAX}. Papers mentioning them never do.",
    )


class _InterestsMixin:
    """Topics are optional when the reader says what they work on; one of them is needed."""

    NEED_ONE = "Choose at least one topic or tell us what you work on."

    def clean_interests(self) -> str:
        return interests_clean(self.cleaned_data["interests"])

    def clean(self) -> dict:
        data = super().clean()
        has_both = "topics" in data and "interests" in data  # each passed its own checks
        if has_both and not data["topics"] and not data["interests"]:
            self.add_error("topics", self.NEED_ONE)
        return data


class SubscribeForm(_InterestsMixin, forms.Form):
    email = forms.CharField(
        label="Email address",
        max_length=MAX_LENGTH + 20,  # room for surrounding spaces; the real limit is checked below
        widget=forms.EmailInput(attrs={"autocomplete": "email", "required": True}),
    )
    topics = TopicsField(queryset=Topic.objects.none(), label="Topics", required=False)
    interests = _interests_field()
    follows = _follows_field()
    muted = _muted_field()
    time_zone = forms.ChoiceField(
        label="Your time zone",
        required=False,
        initial=schedule.DEFAULT_ZONE,
        help_text="Your delivery time (07:00 on weekdays to start with) is in this time zone; "
        "you can change the day, hour and frequency in your preferences.",
        error_messages={"invalid_choice": "“%(value)s” is not a time zone we know."},
        widget=forms.Select(attrs={"data-browser-time-zone": ""}),
    )
    consent_version = forms.CharField(widget=forms.HiddenInput)
    # The honeypot: hidden from people by CSS and from assistive technology by aria-hidden;
    # form-filling bots tend to fill every field.
    website = forms.CharField(required=False, label="Leave this field empty")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topics"].queryset = _topic_choices()
        self.fields["time_zone"].choices = [(z, z) for z in schedule.time_zone_names()]
        if self.is_bound and self.data.get("time_zone"):
            # The reader's own choice after an error: the script must not replace it.
            self.fields["time_zone"].widget.attrs["data-chosen"] = "1"

    def clean_time_zone(self) -> str:
        return self.cleaned_data["time_zone"] or schedule.DEFAULT_ZONE

    def clean_email(self) -> str:
        return email_normalize(self.cleaned_data["email"])

    def clean_consent_version(self) -> str:
        version = self.cleaned_data["consent_version"]
        if version not in CONSENT_TEXTS:
            raise ValidationError("This page was out of date; please review it and submit again.")
        return version

    def is_bot(self) -> bool:
        return bool(self.data.get("website", "").strip())


class PreferencesForm(_InterestsMixin, forms.Form):
    """The preference center's one form: topics and everything the ranking reads."""

    topics = TopicsField(queryset=Topic.objects.none(), label="Topics", required=False)
    interests = _interests_field()
    follows = _follows_field()
    muted = _muted_field()
    focus = forms.IntegerField(
        label="Mix of my field and what's hot",
        min_value=0,
        max_value=100,
        required=False,  # absent: keep the current mix
        widget=forms.NumberInput(attrs={"type": "range", "step": 5}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topics"].queryset = _topic_choices()

    @classmethod
    def for_profile(cls, subscriber, profile: Profile) -> PreferencesForm:
        return cls(
            initial={
                "topics": list(subscriber.topics.all()),
                "interests": profile.interests,
                "follows": profile.follows,
                "muted": profile.muted,
                "focus": profile.focus,
            }
        )


WEEKDAY_CHOICES = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


class ScheduleForm(forms.Form):
    """When and how much: the reader's rhythm (subscriptions.schedule).

    The time zone is a list of IANA names; at signup a small script proposes the browser's.
    """

    time_zone = forms.ChoiceField(
        label="Time zone",
        initial=schedule.DEFAULT_ZONE,
        error_messages={"invalid_choice": "“%(value)s” is not a time zone we know."},
    )
    delivery_hour = forms.TypedChoiceField(
        label="Delivery time",
        coerce=int,
        choices=[(h, f"{h:02d}:00") for h in range(24)],
        initial=schedule.DEFAULT_HOUR,
        error_messages={"invalid_choice": "Choose an hour from 00:00 to 23:00."},
    )
    frequency = forms.ChoiceField(
        label="How often",
        choices=Subscriber.Frequency.choices,
        initial=schedule.WEEKDAYS,
        help_text="Once a week: the week's best papers for you, none you already had.",
        widget=forms.RadioSelect,
    )
    weekday = forms.TypedChoiceField(
        label="Day of the week (weekly)",
        coerce=int,
        choices=WEEKDAY_CHOICES,
        initial=0,
        error_messages={"invalid_choice": "Choose a day of the week."},
    )
    papers_per_email = forms.TypedChoiceField(
        label="Papers per email",
        coerce=int,
        choices=[(n, str(n)) for n in schedule.PAPERS_CHOICES],
        initial=10,
        error_messages={"invalid_choice": "Choose 3, 5, 10 or 20 papers."},
    )
    paused_until = forms.DateField(
        label="Pause until",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Nothing is sent before this date. Leave empty to get every email.",
        error_messages={"invalid": "Enter a date like 2026-12-24."},
    )
    top_when_empty = forms.BooleanField(
        label="On a day with nothing for me, send the day's top papers",
        required=False,
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(z, z) for z in schedule.time_zone_names()]

    @classmethod
    def for_subscriber(cls, subscriber: Subscriber) -> ScheduleForm:
        return cls(initial={name: getattr(subscriber, name) for name in cls.base_fields})

    def clean_paused_until(self):
        value = self.cleaned_data["paused_until"]
        if value is not None and value <= timezone.now().date():
            raise ValidationError("Choose a date after today, or leave it empty.")
        return value


def _address_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=MAX_LENGTH + 20,  # room for surrounding spaces; the real limit is checked below
        widget=forms.EmailInput(attrs={"autocomplete": "email", "required": True}),
    )


class LinkRequestForm(forms.Form):
    """ "Email me my link": an address, and the same honeypot as the signup form."""

    email = _address_field("Email address")
    website = forms.CharField(required=False, label="Leave this field empty")

    def clean_email(self) -> str:
        return email_normalize(self.cleaned_data["email"])

    def is_bot(self) -> bool:
        return bool(self.data.get("website", "").strip())


class AddressChangeForm(forms.Form):
    """The preference center's change of address: the new one, confirmed from its mailbox."""

    new_email = _address_field("New email address")

    def clean_new_email(self) -> str:
        return email_normalize(self.cleaned_data["new_email"])


class EraseForm(forms.Form):
    confirm = forms.BooleanField(
        label="I understand that this deletes my subscription and data for good.",
        error_messages={"required": "Tick the box to confirm."},
    )
