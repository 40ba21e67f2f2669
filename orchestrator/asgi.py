"""ASGI entry point served by Daphne: HTTP (API, admin, static files) and the live pages' websockets.

HTTP goes through Django's WSGI handler on a small pool of long-lived threads (orchestrator/http.py says why
Django's ASGI handler is not used for our synchronous views). Websockets go to Channels consumers behind the
allowed-hosts origin check and the Django session (apps/live/routing.py, docs/live.md).
"""

import os

from channels.routing import ProtocolTypeRouter
from django.conf import settings
from django.core.wsgi import get_wsgi_application

from orchestrator.http import WsgiOverAsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django_application = get_wsgi_application()
# The adapter only guards memory; a body up to the limit plus 1 MB reaches Django, which answers a clear 413.
http_application = WsgiOverAsgi(django_application, threads=4, max_body_bytes=settings.API_MAX_BODY_BYTES + 2**20)

from apps.live.routing import websocket_application  # noqa: E402  (needs Django set up, above)

application = ProtocolTypeRouter(
    {"http": http_application, "lifespan": http_application, "websocket": websocket_application}
)
