"""The Content-Security-Policy middleware, with the one exception the site needs.

A page that shows an email does so in a sandboxed ``srcdoc`` frame, and such a frame inherits
the page's policy. An email's styles are inline (clients drop stylesheets, so they are inlined
into ``style`` attributes), so on those pages ``style-src`` also allows inline styles, or the
email would be shown unstyled. The frame's empty sandbox and ``script-src`` still run no script.
"""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.middleware import PolicyParts
from django.http import HttpRequest, HttpResponseBase

# URL names (with namespace) of the pages that show a rendered email in a frame.
# "View in browser" (newsletter:archive-yours) is the email itself as the page.
EMAIL_FRAME_VIEWS = frozenset(
    {"outbox-detail", "admin:digests_dailybatch_preview", "newsletter:archive-yours"}
)
EMAIL_FRAME_POLICY = {"style-src": [UNSAFE_INLINE]}


class CSPMiddleware(BaseCSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.view_name in EMAIL_FRAME_VIEWS and parts.update is None:
            parts.update = EMAIL_FRAME_POLICY
        return parts
