"""The admin index's first module: today's batch and what needs doing."""

from __future__ import annotations

from django import template

from newsletter.selectors import editor_today, issue_rate

register = template.Library()


@register.inclusion_tag("admin/newsletter/today.html")
def paperboy_today():
    today = editor_today()
    last = today.last_issue
    rates = (
        {name: f"{issue_rate(last, name) * 100:.1f} %" for name in ("opened", "clicked", "bounced")}
        if last
        else {}
    )
    return {"today": today, "last": last, "rates": rates}
