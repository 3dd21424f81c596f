"""A local stand-in for Amazon SNS's ``ConfirmSubscription`` action, written from its documented
shapes: what Anymail's Amazon SES tracking webhook calls (through boto3) when SNS posts a
SubscriptionConfirmation to it.

SNS speaks the AWS query protocol: ``POST /`` with a form body ``Action=ConfirmSubscription&
TopicArn=...&Token=...&AuthenticateOnUnsubscribe=true&Version=2010-03-31`` and a SigV4
``Authorization: AWS4-HMAC-SHA256 Credential=.../<region>/sns/aws4_request, ...`` header.
It answers 200 with ``<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>
<SubscriptionArn>`` XML; an unknown token is 400 ``InvalidParameter`` (an ``ErrorResponse``),
an unsigned call 403 ``MissingAuthenticationToken``. Point boto3 at it with
``AWS_ENDPOINT_URL_SNS`` (botocore's per-service endpoint variable).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from devtools.fakes.serving import LocalFake

NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"


@dataclass
class FakeSnsState:
    tokens: set[str] = field(default_factory=set)  # tokens of pending subscriptions
    # (topic ARN, token, AuthenticateOnUnsubscribe, region signed for) of each confirmation
    confirmed: list[tuple[str, str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _signed_region(authorization: str) -> str | None:
    """The region of a SigV4 Authorization header for SNS, or None when it is not one."""
    if not authorization.startswith("AWS4-HMAC-SHA256 Credential="):
        return None
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    if len(scope) != 5 or scope[3] != "sns" or scope[4] != "aws4_request":
        return None
    return scope[2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, xml: str) -> None:
        data = xml.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._reply(
            status,
            f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>",
        )

    def do_POST(self) -> None:
        state: FakeSnsState = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        region = _signed_region(self.headers.get("Authorization", ""))
        if region is None:
            return self._error(403, "MissingAuthenticationToken", "Request is not signed")
        if form.get("Action") != "ConfirmSubscription":
            return self._error(400, "InvalidAction", f"not served here: {form.get('Action')}")
        topic, token = form.get("TopicArn", ""), form.get("Token", "")
        with state.lock:
            known = token in state.tokens
            if known:
                state.tokens.discard(token)
                state.confirmed.append(
                    (topic, token, form.get("AuthenticateOnUnsubscribe", ""), region)
                )
        if not known:
            return self._error(400, "InvalidParameter", "Invalid token")
        self._reply(
            200,
            f'<ConfirmSubscriptionResponse xmlns="{NAMESPACE}"><ConfirmSubscriptionResult>'
            f"<SubscriptionArn>{escape(topic)}:{uuid.uuid4()}</SubscriptionArn>"
            "</ConfirmSubscriptionResult><ResponseMetadata>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</ConfirmSubscriptionResponse>",
        )


class FakeSns(LocalFake):
    """``with FakeSns() as fake:`` serves on ``fake.url`` until the block ends."""

    state: FakeSnsState
    state_class = FakeSnsState
    handler_class = _Handler
