"""Copies filled into a content's MIME template (newsletter/mime_copies.py) are the messages the
SMTP and Amazon SES backends would have built whole, byte for byte but for Message-ID, Date and
the multipart boundary; where the template cannot be exact, the copy is built whole."""

from __future__ import annotations

import email
import email.policy
import random
import re
import string

import pytest
from anymail.backends.amazon_ses import EmailBackend as AnymailSesBackend

from devtools.fakes.amazon_ses import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from devtools.fakes.smtp import FakeSmtp
from newsletter import mime_copies
from newsletter.amazon_ses import AmazonSesEmailBackend
from newsletter.composition import FEEDBACK_URL, SCHEDULE, UNSUBSCRIBE_URL
from newsletter.models import Delivery, IssueContent
from newsletter.rendering import IssueRenderer
from newsletter.services.sending import DIGEST_TAG, deliveries_send_chunk, digest_message
from newsletter.services.single_sends import message_single
from newsletter.smtp import SmtpEmailBackend
from subscriptions.links import preferences_url, unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

READERS = 4


@pytest.fixture
def aws(monkeypatch, settings):
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)


@pytest.fixture
def content(day_batch, sending, settings):
    """One content's batch message for READERS readers, as the send code builds it."""
    settings.SITE_URL = "https://paperboy.example.org"
    for _ in range(READERS):
        SubscriberFactory(topics=[day_batch.topics["robotics"]])
    issue = sending()
    deliveries = list(Delivery.objects.filter(issue=issue).select_related("subscriber"))
    assert len({d.content_key for d in deliveries}) == 1
    selection = IssueContent.objects.get(issue=issue, key=deliveries[0].content_key).selection
    return digest_message(
        IssueRenderer(issue.batch), deliveries, selection=selection, claim="c" * 32
    )


class Smtp:
    """The SMTP backend's two ways of making a copy's bytes."""

    def __init__(self) -> None:
        self.backend = SmtpEmailBackend()

    def filled(self, one) -> bytes | None:
        SmtpEmailBackend._headers_add(one)  # as _send does before the bytes are made
        filled = mime_copies.copy_filled(one, key="smtp-test", build=self.backend._mime_probe)
        return None if filled is None else filled.raw

    def whole(self, one) -> bytes:
        SmtpEmailBackend._headers_add(one)
        return SmtpEmailBackend._mime(one)[1]

    def sent(self, one) -> bytes:
        """What the backend hands over for this copy, whichever way it makes it."""
        return self.filled(one) or self.whole(one)


class Ses:
    """The Amazon SES backend's: our payload of filled bytes, or Anymail's own."""

    def __init__(self) -> None:
        self.backend = AmazonSesEmailBackend()

    def filled(self, one) -> bytes | None:
        payload = self.backend.build_message_payload(one, self.backend.send_defaults)
        if not isinstance(payload, mime_copies_payload()):
            return None
        return payload.generate_raw_message()

    def whole(self, one) -> bytes:
        payload = AnymailSesBackend.build_message_payload(
            self.backend, one, self.backend.send_defaults
        )
        return payload.generate_raw_message()

    def sent(self, one) -> bytes:
        payload = self.backend.build_message_payload(one, self.backend.send_defaults)
        payload.finalize_payload()
        assert payload.params["Destination"] == {"ToAddresses": [_addr(one.to[0])]}
        return payload.params["Content"]["Raw"]["Data"]

    def assert_same_call(self, one) -> None:
        """The call's parameters but the raw message, and what its answer is read as, are
        Anymail's own."""
        defaults = self.backend.send_defaults
        filled = self.backend.build_message_payload(one, defaults)
        whole = AnymailSesBackend.build_message_payload(self.backend, one, defaults)
        for payload in (filled, whole):
            payload.finalize_payload()
            del payload.params["Content"]
        assert filled.params == whole.params
        answer = {"MessageId": "0100-ses-id"}
        statuses = [
            {to: (status.message_id, status.status) for to, status in read.items()}
            for read in (
                filled.parse_recipient_status(answer),
                whole.parse_recipient_status(answer),
            )
        ]
        assert statuses[0] == statuses[1] == {_addr(one.to[0]): ("0100-ses-id", "queued")}


def mime_copies_payload():
    from newsletter.amazon_ses import _FilledCopyPayload

    return _FilledCopyPayload


BACKENDS = {"smtp": Smtp, "amazon_ses": Ses}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, aws):
    return BACKENDS[request.param]()


def _addr(address: str) -> str:
    return address.rsplit("<", 1)[-1].rstrip(">")


def _parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def _headers(message) -> list[tuple[str, str]]:
    return [
        (name, str(value) if name != "Content-Type" else message.get_content_type())
        for name, value in message.items()
        if name not in ("Message-ID", "Date")
    ]


def _parts(message) -> list[tuple[str, str, str]]:
    return [
        (part.get_content_type(), part["Content-Transfer-Encoding"], part.get_content())
        for part in message.walk()
        if not part.is_multipart()
    ]


def _normalized(data: bytes) -> bytes:
    """The bytes with what differs between any two builds of a copy made equal."""
    data = re.sub(rb"(?m)^(Message-ID|Date): .*$", rb"\1: -", data)
    boundaries = set(re.findall(rb'boundary="([^"]+)"', data))
    for boundary in boundaries:
        data = data.replace(boundary, b"BOUNDARY")
    return data


def assert_same_copy(filled: bytes, whole: bytes) -> None:
    fast, slow = _parsed(filled), _parsed(whole)
    assert _headers(fast) == _headers(slow)
    assert _parts(fast) == _parts(slow)
    assert fast.get_body(("plain",)).get_content() == slow.get_body(("plain",)).get_content()
    assert fast.get_body(("html",)).get_content() == slow.get_body(("html",)).get_content()
    assert _normalized(filled) == _normalized(whole)  # down to folding and line breaks


def test_it_fills_each_copy_as_the_backend_would_build_it(content, backend):
    copies = message_single(content)
    assert len(copies) == READERS
    message_ids = set()
    for address, one in copies:
        filled = backend.filled(one)
        assert filled is not None  # made from the template, not built whole
        assert_same_copy(filled, backend.whole(one))
        parsed = _parsed(filled)
        assert parsed["To"] == address
        links = content.merge_data[address]
        html = parsed.get_body(("html",)).get_content()
        text = parsed.get_body(("plain",)).get_content()
        assert links[UNSUBSCRIBE_URL] in text
        assert html.count(links[FEEDBACK_URL]) >= 2  # the reader's own 👍/👎 links
        assert parsed["List-Unsubscribe"].strip() == f"<{links[UNSUBSCRIBE_URL]}>"
        message_ids.add(parsed["Message-ID"])
        if isinstance(backend, Ses):
            backend.assert_same_call(one)
    assert len(message_ids) == READERS


def test_the_ses_call_keeps_the_configuration_set_and_tag(content, aws, settings):
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "AMAZON_SES_CONFIGURATION_SET_NAME": "digests",
        "AMAZON_SES_MESSAGE_TAG_NAME": "kind",
    }
    content.envelope_sender = "bounces@paperboy.example.org"
    ses = Ses()
    for _, one in message_single(content):
        assert ses.filled(one) is not None
        ses.assert_same_call(one)
        payload = ses.backend.build_message_payload(one, ses.backend.send_defaults)
        assert payload.params["ConfigurationSetName"] == "digests"
        assert payload.params["EmailTags"] == [{"Name": "kind", "Value": DIGEST_TAG}]


@pytest.mark.parametrize("linesep", ["\n", "\r\n"])
def test_a_header_written_without_folding_is_what_the_policy_folds(linesep):
    policy = email.policy.compat32.clone(linesep=linesep)
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "<>@.:/_-=+;,!#$%&'*?^`{|}~[]()"
    for name in ("To", "Message-ID", "List-Unsubscribe", "X-Paperboy-Delivery", "Date"):
        for length in range(1, 200):
            for _ in range(4):
                value = "".join(rng.choice(alphabet) for _ in range(length))
                if length > 2 and rng.random() < 0.5:
                    at = rng.randrange(1, length - 1)
                    value = value[:at] + " " + value[at + 1 :]
                assert mime_copies._folded(policy, name, value) == policy.fold_binary(
                    name, value
                ), (name, value)


def test_a_non_ascii_subject_and_body_keep_their_encoding(content, backend):
    content.subject = "Robots, l'été et 🤖: " + "a long subject that must be folded " * 3
    content.body = content.body + "\nÇa marche — déjà.\n"
    html, mimetype = content.alternatives[0]
    content.alternatives = [(html.replace("</body>", "<p>Ça — déjà ☕</p></body>"), mimetype)]
    for _, one in message_single(content):
        filled = backend.filled(one)
        assert filled is not None
        assert_same_copy(filled, backend.whole(one))
        parsed = _parsed(filled)
        assert " ".join(parsed["Subject"].split()) == " ".join(content.subject.split())
        assert "Ça — déjà ☕" in parsed.get_body(("html",)).get_content()
    encodings = {part["Content-Transfer-Encoding"] for part in _parsed(filled).walk()}
    # SMTP sends UTF-8 as 8bit; Anymail turns 8bit into quoted-printable for SES.
    assert encodings - {None} == ({"8bit"} if isinstance(backend, Smtp) else {"quoted-printable"})


def test_a_non_ascii_display_name_is_built_whole(content, backend):
    first = content.to[0]
    content.to[0] = f"Zoë Ünal <{first}>"
    copies = message_single(content)
    assert backend.filled(copies[0][1]) is None  # its To would be RFC 2047-encoded
    sent = backend.sent(copies[0][1])
    assert_same_copy(sent, backend.whole(copies[0][1]))
    assert _parsed(sent)["To"].addresses[0].display_name == "Zoë Ünal"
    assert b"=?utf-8?" in sent
    for _, one in copies[1:]:  # the others still filled
        assert backend.filled(one) is not None


def test_a_filled_line_over_998_bytes_is_built_whole(content, backend):
    long_reader, other = content.to[0], content.to[1]
    content.merge_data[long_reader][SCHEDULE] = "weekdays " * 120  # one footer line > 998
    copies = dict(message_single(content))
    assert backend.filled(copies[long_reader]) is None
    sent = backend.sent(copies[long_reader])
    assert_same_copy(sent, backend.whole(copies[long_reader]))
    # Django made that copy's parts quoted-printable: no line of it is over the limit.
    assert max(len(line) for line in sent.splitlines()) <= 998
    assert "quoted-printable" in {p["Content-Transfer-Encoding"] for p in _parsed(sent).walk()}
    assert backend.filled(copies[other]) is not None


def test_a_value_is_html_escaped_in_the_html_part_only(content, backend):
    reader = content.to[0]
    content.merge_data[reader][SCHEDULE] = "Mon & Wed at 07:00 <O'Higgins>"
    copies = dict(message_single(content))
    filled = backend.filled(copies[reader])
    assert filled is not None
    assert_same_copy(filled, backend.whole(copies[reader]))
    parsed = _parsed(filled)
    assert (
        "Mon &amp; Wed at 07:00 &lt;O&#x27;Higgins&gt;" in parsed.get_body(("html",)).get_content()
    )
    assert "Mon & Wed at 07:00 <O'Higgins>" in parsed.get_body(("plain",)).get_content()


def test_a_non_ascii_merge_value_is_built_whole(content, backend):
    reader = content.to[0]
    content.merge_data[reader][SCHEDULE] = "weekdays at 07:00 (Europe/Zürich)"
    copies = dict(message_single(content))
    assert backend.filled(copies[reader]) is None
    sent = backend.sent(copies[reader])
    assert_same_copy(sent, backend.whole(copies[reader]))
    assert "Europe/Zürich" in _parsed(sent).get_body(("html",)).get_content()


def test_a_content_with_a_long_line_is_built_whole(content, backend):
    content.body = content.body + "\n" + "x" * 1200 + "\n"  # Django's quoted-printable
    for _, one in message_single(content):
        assert backend.filled(one) is None
        assert_same_copy(backend.sent(one), backend.whole(one))


def test_a_body_changed_after_the_copy_was_made_is_built_whole(content, backend):
    (_, one), *_ = message_single(content)
    one.body = one.body + "\nP.S. changed by a pre_send receiver\n"
    assert backend.filled(one) is None
    sent = backend.sent(one)
    assert_same_copy(sent, backend.whole(one))
    assert "P.S. changed" in _parsed(sent).get_body(("plain",)).get_content()


def test_a_single_reader_is_built_whole(content, backend):
    content.to = content.to[:1]
    [(_, one)] = message_single(content)
    assert backend.filled(one) is None  # no template for one copy: it would cost more


def test_it_sends_each_reader_their_own_links_over_smtp(day_batch, sending, settings):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(3)]
    with FakeSmtp() as fake:
        settings.ANYMAIL_ESP = "smtp"
        settings.EMAIL_BACKEND = "newsletter.smtp.SmtpEmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", fake.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.SEND_CONCURRENCY = 1
        issue = sending()
        assert deliveries_send_chunk(issue_id=issue.pk) == 3
        messages = {m["to"][0]: m["message"] for m in fake.state.messages}
    for reader in readers:
        message = messages[reader.email]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert unsubscribe_url(reader) in text and preferences_url(reader) in html
        others = [r for r in readers if r != reader]
        assert not any(unsubscribe_url(r) in text + html for r in others)
    # Filled into one template: the copies share its multipart boundary (built whole, each
    # copy gets a random one of its own).
    assert len({m.get_boundary() for m in messages.values()}) == 1
    assert len({m["Message-ID"] for m in messages.values()}) == 3
