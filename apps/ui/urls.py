"""The live pages' URLs, mounted at /ui/ (orchestrator/urls.py). Each page family adds its patterns here."""

from django.urls import path  # noqa: F401  (the page families add their patterns below)

app_name = "ui"

urlpatterns: list = []
