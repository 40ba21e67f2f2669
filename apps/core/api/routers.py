"""The router every app's API uses: the trailing slash is optional.

With a required slash, Django's APPEND_SLASH answers `POST /api/flows` with a 301 to `/api/flows/`, and an HTTP
client that follows it turns the POST into a GET: the request "succeeds" without creating anything.
"""

from rest_framework.routers import SimpleRouter


class ApiRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
