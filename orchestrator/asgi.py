"""ASGI entry point served by Daphne: HTTP (API, admin, static files).

HTTP goes through Django's WSGI handler on a small pool of long-lived threads (orchestrator/http.py says why
Django's ASGI handler is not used for our synchronous views).
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from orchestrator.http import WsgiOverAsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django_application = get_wsgi_application()
# The adapter only guards memory; a body up to the limit plus 1 MB reaches Django, which answers a clear 413.
application = WsgiOverAsgi(django_application, threads=4, max_body_bytes=settings.API_MAX_BODY_BYTES + 2**20)
