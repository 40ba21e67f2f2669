"""Content negotiation that skips the work when there is nothing to choose."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class SingleRendererNegotiation(DefaultContentNegotiation):
    """Our API views render JSON only: with a single renderer there is nothing to negotiate, and DRF's parsing of
    the Accept header and `?format=` was about 5% of a state change's CPU. Views with several renderers (the
    OpenAPI schema: YAML or JSON) are negotiated as DRF does."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and format_suffix is None:
            renderer = renderers[0]
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
