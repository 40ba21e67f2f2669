"""Rendering a live page: the admin's header context (site names, "View site", user tools) plus the page's own."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def header_context(request: HttpRequest) -> dict[str, Any]:
    """What the admin's header needs from `admin.site.each_context()`.

    That method also builds the app list of the admin's sidebar (a URL reversal per model), which the live pages
    do not show: they have their own nav bar and need the width."""
    site = admin.site
    return {
        "site_title": site.site_title,
        "site_header": site.site_header,
        "site_url": site.site_url,
        "has_permission": site.has_permission(request),
        "available_apps": [],
        "is_popup": False,
        "is_nav_sidebar_enabled": False,
    }


def render_page(
    request: HttpRequest, template: str, *, title: str, section: str, context: dict[str, Any] | None = None
) -> HttpResponse:
    """`template` (extending ui/base.html) with the page title and the nav section."""
    page_context = {**header_context(request), "title": title, "ui_section": section, **(context or {})}
    return render(request, template, page_context)
