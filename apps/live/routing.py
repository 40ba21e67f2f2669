"""The websocket side of the ASGI application: /ws/flow-runs/ and /ws/flow-runs/<id>/, behind the allowed-hosts
origin check (a browser's) and the Django session (orchestrator/asgi.py routes websocket scopes here; docs/live.md)."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.urls import re_path

from apps.live.consumers import FlowRunConsumer, FlowRunsConsumer

websocket_urlpatterns = [
    re_path(r"^ws/flow-runs/$", FlowRunsConsumer.as_asgi()),
    # Any id: one that is not a flow run's (malformed included) is accepted, then closed with 4404 and a reason.
    re_path(r"^ws/flow-runs/(?P<flow_run_id>[^/]+)/$", FlowRunConsumer.as_asgi()),
    re_path(r"", WebsocketDenier.as_asgi()),  # any other path: the handshake is refused (403)
]


class BrowserOriginValidator(OriginValidator):
    """A browser's handshake, which always carries an Origin, must come from a page of a host in ALLOWED_HOSTS: a
    page of another site cannot use its visitor's session (cross-site websocket hijacking, DNS rebinding). A client
    that is not a browser sends no Origin and brings its own credentials, as to the REST API."""

    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origins=[])

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        # Read at each handshake, as Django's own Host check reads it (the test runner adds `testserver`).
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern) for pattern in settings.ALLOWED_HOSTS
        )


websocket_application = BrowserOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
