"""The error summary at the top of a form: what went wrong, each item linking to its field."""

from __future__ import annotations

from django import template
from django.forms import Form

register = template.Library()


def _anchor(field) -> str:
    if field.is_hidden:
        return ""  # nothing to go to: the message stands on its own
    # A group of checkboxes has no single control to label; its first box is where to go.
    return field.id_for_label or f"{field.auto_id}_0"


@register.inclusion_tag("subscriptions/_error_summary.html")
def error_summary(form: Form, summary_id: str) -> dict:
    items = [{"anchor": "", "label": "", "message": m} for m in form.non_field_errors()]
    for field in form:
        for message in field.errors:
            items.append({"anchor": _anchor(field), "label": field.label, "message": message})
    return {"items": items, "summary_id": summary_id}
