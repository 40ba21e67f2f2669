"""Rendering a live page: the admin's context (header, user tools, "View site") plus the page's own."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def render_page(
    request: HttpRequest, template: str, *, title: str, section: str, context: dict[str, Any] | None = None
) -> HttpResponse:
    """`template` (extending ui/base.html) with the admin site's context, the page title and the nav section."""
    page_context = {
        **admin.site.each_context(request),
        # The live pages have their own nav bar and need the width: no admin app list on the side.
        "is_nav_sidebar_enabled": False,
        "title": title,
        "ui_section": section,
        **(context or {}),
    }
    return render(request, template, page_context)
