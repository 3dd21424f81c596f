from __future__ import annotations

from newsletter.models import Delivery


def delivery_history(subscriber) -> list[dict]:
    """The digests sent to a subscriber, for their data export."""
    rows = (
        Delivery.objects.filter(subscriber=subscriber)
        .select_related("issue__batch")
        .order_by("issue__batch__date")
    )
    return [
        {
            "digest_date": d.issue.batch.date.isoformat(),
            "status": d.status,
            "papers": [paper_id for paper_id, _ in d.selection],
            "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            "opened_at": d.opened_at.isoformat() if d.opened_at else None,
        }
        for d in rows
    ]
