"""The websocket side of the ASGI application: /ws/flow-runs/ and /ws/flow-runs/<id>/, behind the allowed-hosts
origin check and the Django session (orchestrator/asgi.py routes websocket scopes here; docs/live.md)."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.urls import re_path

from apps.live.consumers import FlowRunConsumer, FlowRunsConsumer

websocket_urlpatterns = [
    re_path(r"^ws/flow-runs/$", FlowRunsConsumer.as_asgi()),
    # Any id: one that is not a flow run's (malformed included) is accepted, then closed with 4404 and a reason.
    re_path(r"^ws/flow-runs/(?P<flow_run_id>[^/]+)/$", FlowRunConsumer.as_asgi()),
    re_path(r"", WebsocketDenier.as_asgi()),  # any other path: the handshake is refused (403)
]

websocket_application = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
