from __future__ import annotations

from digests.models import Paper
from newsletter.models import Delivery, IssueContent


def delivery_history(subscriber) -> list[dict]:
    """The digests sent to a subscriber, for their data export."""
    rows = list(
        Delivery.objects.filter(subscriber=subscriber)
        .select_related("issue__batch")
        .order_by("issue__batch__date")
    )
    selections = {
        (content.issue_id, content.key): content.selection
        for content in IssueContent.objects.filter(
            issue__in={d.issue_id for d in rows}, key__in={d.content_key for d in rows}
        )
    }

    def papers(delivery: Delivery) -> list[int]:
        selection = selections.get((delivery.issue_id, delivery.content_key), [])
        return [paper_id for paper_id, _ in selection]

    paper_ids = {paper_id for d in rows for paper_id in papers(d)}
    arxiv_ids = dict(Paper.objects.filter(pk__in=paper_ids).values_list("pk", "arxiv_id"))
    return [
        {
            "digest_date": d.issue.batch.date.isoformat(),
            "status": d.status,
            "papers": [arxiv_ids.get(paper_id) for paper_id in papers(d)],
            "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            "opened_at": d.opened_at.isoformat() if d.opened_at else None,
        }
        for d in rows
    ]
