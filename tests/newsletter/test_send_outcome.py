"""What a provider's answer or exception means for a chunk, on the exceptions Anymail raises."""

from __future__ import annotations

import json

import pytest
import requests
from anymail.exceptions import (
    AnymailAPIError,
    AnymailRecipientsRefused,
    AnymailRequestsAPIError,
)

from newsletter.services.sending import Outcome, send_outcome

URL = "https://api.postmarkapp.com/email/batch"


def _answer(status: int, body: object = None, **headers: str) -> AnymailRequestsAPIError:
    """What Anymail's raise_for_status raises for an HTTP answer outside 2xx."""
    response = requests.Response()
    response.status_code = status
    response.reason = "Status"
    response.url = URL
    response.headers.update(headers)
    response._content = json.dumps(body if body is not None else {}).encode()
    return AnymailRequestsAPIError(response=response)


def _failed_post(cause: requests.RequestException) -> AnymailRequestsAPIError:
    """What Anymail's post_to_esp raises when the request itself fails: an error that is both
    AnymailRequestsAPIError and the requests exception's type, raised from it."""
    error_class = type("AnymailRequestsAPIError", (AnymailRequestsAPIError, type(cause)), {})
    try:
        raise error_class(f"Error posting to {URL}:") from cause
    except AnymailRequestsAPIError as error:
        return error


def _invalid_batch_answer() -> AnymailRequestsAPIError:
    """The backend's own error for a 200 answer without one entry per message."""
    response = requests.Response()
    response.status_code = 200
    response._content = b"[]"
    return AnymailRequestsAPIError("Invalid Postmark batch response", response=response)


POSTMARK_422 = {"ErrorCode": 300, "Message": "Invalid 'From' address: 'nobody'."}


@pytest.mark.parametrize(
    ("error", "answered", "outcome", "reason", "retry_after"),
    [
        pytest.param(None, True, Outcome.ACCEPTED, "", None, id="no-error"),
        pytest.param(
            AnymailRecipientsRefused("all refused"), True, Outcome.REFUSED, "", None,
            id="one-message-refused-others-answered",
        ),
        pytest.param(
            AnymailRecipientsRefused("all refused"), False, Outcome.PERMANENT,
            "provider refused: all refused", None, id="refused-and-nothing-answered",
        ),
        pytest.param(
            _answer(429, {"ErrorCode": 429}, **{"Retry-After": "7"}), False, Outcome.TRANSIENT,
            "provider answered 429", 7.0, id="429-with-retry-after",
        ),
        pytest.param(
            _answer(500), False, Outcome.TRANSIENT, "provider answered 500", None, id="500",
        ),
        pytest.param(
            _answer(503, **{"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}), True,
            Outcome.TRANSIENT, "provider answered 503", None, id="503-with-a-date-retry-after",
        ),
        pytest.param(
            _failed_post(requests.ConnectionError("[Errno 111] Connection refused")), False,
            Outcome.TRANSIENT, "provider unreachable: [Errno 111] Connection refused", None,
            id="connection-refused",
        ),
        pytest.param(
            _failed_post(requests.ConnectTimeout("connect timed out")), False,
            Outcome.TRANSIENT, "provider unreachable: connect timed out", None,
            id="connect-timeout",
        ),
        pytest.param(
            _failed_post(requests.ReadTimeout("read timed out")), False, Outcome.UNKNOWN,
            "send outcome unknown", None, id="read-timeout-may-have-been-taken",
        ),
        pytest.param(
            _failed_post(requests.exceptions.ChunkedEncodingError("cut off")), False,
            Outcome.UNKNOWN, "send outcome unknown", None, id="answer-cut-off",
        ),
        pytest.param(
            _answer(401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."}),
            False, Outcome.PERMANENT, None, None, id="401-bad-token",
        ),
        pytest.param(
            _answer(422, POSTMARK_422), False, Outcome.PERMANENT, None, None, id="422-invalid",
        ),
        pytest.param(
            _invalid_batch_answer(), False, Outcome.PERMANENT, None, None,
            id="200-but-unreadable",
        ),
        pytest.param(
            AnymailAPIError("ESP said no"), False, Outcome.PERMANENT,
            "provider refused: ESP said no", None, id="api-error-without-status",
        ),
    ],
)  # fmt: skip
def test_it_says_what_an_answer_means(error, answered, outcome, reason, retry_after):
    verdict = send_outcome(error, answered=answered)

    assert verdict.outcome is outcome
    if reason is None:  # Anymail's own description of the answer
        assert verdict.reason == f"provider refused: {error}"
        assert str(error.status_code) in verdict.reason
    else:
        assert verdict.reason == reason
    assert verdict.retry_after == retry_after


def test_it_caps_the_reason_at_the_column_size():
    verdict = send_outcome(AnymailAPIError("x" * 5000), answered=False)

    assert verdict.outcome is Outcome.PERMANENT
    assert len(verdict.reason) == 2000
