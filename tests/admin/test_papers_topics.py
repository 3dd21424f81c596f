"""Papers and topics as an editor: search, filters, manual topics, phrases and re-tagging."""

from __future__ import annotations

import datetime as dt

import pytest

from digests.models import PaperTopic, Topic
from tests.admin.conftest import logged
from tests.factories import BatchEntryFactory, DailyBatchFactory, PaperFactory, TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_topics(db):
    Topic.objects.all().delete()  # the seeded topics would tag the test papers too


def listed(client, url, **params) -> list:
    page = client.get(url, params)
    assert page.status_code == 200
    return list(page.context["cl"].result_list)


def test_it_finds_papers_by_arxiv_id_and_title_and_filters_by_topic_and_day(editor_client):
    robots = TopicFactory(name="Robots", slug="robots")
    old = PaperFactory(arxiv_id="2501.00001", title="Old robots")
    new = PaperFactory(arxiv_id="2605.00002", title="Diffusion for everything")
    PaperTopic.objects.create(paper=old, topic=robots, reason="test")
    BatchEntryFactory(batch=DailyBatchFactory(date=dt.date.today()), paper=new)
    BatchEntryFactory(batch=DailyBatchFactory(date=dt.date(2020, 1, 1)), paper=old)
    url = "/admin/digests/paper/"

    assert listed(editor_client, url, q="2605.00002") == [new]
    assert listed(editor_client, url, q="robots") == [old]
    assert listed(editor_client, url, topics__id__exact=robots.pk) == [old]
    today = dt.date.today()
    tomorrow = today + dt.timedelta(days=1)
    assert listed(
        editor_client,
        url,
        **{"entries__batch__date__gte": str(today), "entries__batch__date__lt": str(tomorrow)},
    ) == [new]
    page = editor_client.get(url)
    assert b'href="https://arxiv.org/abs/2605.00002"' in page.content


def test_a_topic_an_editor_adds_to_a_paper_is_manual_and_survives_retagging(editor_client, editor):
    topic = TopicFactory(name="Robots", slug="robots", phrases=["robot"])
    paper = PaperFactory(title="Nothing to match here")
    url = f"/admin/digests/paper/{paper.pk}/change/"
    data = {
        "paper_topics-TOTAL_FORMS": "1",
        "paper_topics-INITIAL_FORMS": "0",
        "paper_topics-MIN_NUM_FORMS": "0",
        "paper_topics-MAX_NUM_FORMS": "1000",
        "paper_topics-0-topic": topic.pk,
        "paper_topics-0-reason": "",
        "paper_topics-0-paper": paper.pk,
    }
    response = editor_client.post(url, data)
    assert response.status_code == 302, response.context["errors"]
    link = PaperTopic.objects.get(paper=paper)
    assert link.is_manual and link.reason == "set by an editor"
    assert "Added paper topic" in logged(editor, paper)[0]

    editor_client.post(
        "/admin/digests/topic/", {"action": "retag_recent", "_selected_action": [topic.pk]}
    )
    assert PaperTopic.objects.filter(paper=paper, topic=topic).exists()


def test_it_edits_phrases_one_per_line(editor_client):
    topic = TopicFactory(name="Robots", slug="robots", phrases=["robot"])
    page = editor_client.get(f"/admin/digests/topic/{topic.pk}/change/")
    assert page.context["adminform"].form["phrases"].value() == "robot"
    data = {
        "name": "Robots",
        "slug": "robots",
        "description": "",
        "phrases": "robot\n  humanoid \n\nrobot\n",
        "is_active": "on",
        "position": "3",
    }
    response = editor_client.post(f"/admin/digests/topic/{topic.pk}/change/", data)
    assert response.status_code == 302, response.context["errors"]
    topic.refresh_from_db()
    assert topic.phrases == ["robot", "humanoid"]


def test_its_retag_action_applies_new_phrases_and_reports_matches(editor_client, editor):
    robots = TopicFactory(name="Robots", slug="robots", phrases=["robot"])
    agents = TopicFactory(name="Agents", slug="agents", phrases=["agent"])
    humanoid = PaperFactory(title="A humanoid that walks", abstract="")
    PaperFactory(title="A robot arm", abstract="")
    PaperFactory(title="An agent that plans", abstract="")
    robots.phrases = ["robot", "humanoid"]
    robots.save()

    response = editor_client.post(
        "/admin/digests/topic/",
        {"action": "retag_recent", "_selected_action": [robots.pk, agents.pk]},
        follow=True,
    )

    assert PaperTopic.objects.filter(paper=humanoid, topic=robots).exists()
    [message] = [str(m) for m in response.context["messages"]]
    assert "Re-tagged 3 papers" in message
    assert "Robots: 2" in message and "Agents: 1" in message
    assert logged(editor, robots) == ["Re-tagged recent papers: 2 match"]


def test_an_editors_change_in_admin_locks_the_papers_topics_and_unlocking_retags(
    editor_client, editor
):
    robots = TopicFactory(name="Robots", slug="robots", phrases=["robot"])
    code = TopicFactory(name="Code", slug="code", phrases=["compiler"])
    paper = PaperFactory(title="A robot arm that stacks blocks", abstract="")
    editor_client.post(
        "/admin/digests/topic/", {"action": "retag_recent", "_selected_action": [robots.pk]}
    )
    auto = PaperTopic.objects.get(paper=paper, topic=robots)
    assert not auto.is_manual
    data = {
        "paper_topics-TOTAL_FORMS": "2",
        "paper_topics-INITIAL_FORMS": "1",
        "paper_topics-MIN_NUM_FORMS": "0",
        "paper_topics-MAX_NUM_FORMS": "1000",
        "paper_topics-0-id": auto.pk,
        "paper_topics-0-paper": paper.pk,
        "paper_topics-0-topic": robots.pk,
        "paper_topics-0-reason": auto.reason,
        "paper_topics-0-DELETE": "on",
        "paper_topics-1-paper": paper.pk,
        "paper_topics-1-topic": code.pk,
        "paper_topics-1-reason": "",
    }
    response = editor_client.post(f"/admin/digests/paper/{paper.pk}/change/", data)
    assert response.status_code == 302, response.context["errors"]
    paper.refresh_from_db()
    assert paper.topics_locked
    assert list(paper.paper_topics.values_list("topic__slug", "is_manual")) == [("code", True)]

    editor_client.post(
        "/admin/digests/topic/", {"action": "retag_recent", "_selected_action": [robots.pk]}
    )
    assert list(paper.paper_topics.values_list("topic__slug", flat=True)) == ["code"]

    response = editor_client.post(
        "/admin/digests/paper/",
        {"action": "unlock_topics", "_selected_action": [paper.pk]},
        follow=True,
    )
    paper.refresh_from_db()
    assert not paper.topics_locked
    assert list(paper.paper_topics.values_list("topic__slug", flat=True)) == ["robots"]
    assert logged(editor, paper)[-1] == "Topics handed back to automatic tagging"
