"""`orchestrator version`: what is installed and which database it talks to, for bug reports.

Named `orchestrator-version` because Django answers `manage.py version` itself; `orchestrator.cli`
maps the verb `version` here.
"""

from __future__ import annotations

import platform
from typing import Any

import django
from django.db import connection

import orchestrator
from apps.core.management.base import OrchestratorCommand, mask_url_password
from orchestrator import config


class Command(OrchestratorCommand):
    help = "Show the orchestrator, API, Django and Python versions and the database in use."
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            database_url, source = config.resolve("ORCHESTRATOR_DATABASE_URL")
        except config.ConfigError:
            database_url, source = config.get_default_database_url(), config.DEFAULT
        lines = [
            ("Version", orchestrator.__version__),
            ("API version", orchestrator.API_VERSION),
            ("Django", django.get_version()),
            ("Python", platform.python_version()),
            ("Database", connection.vendor),
            ("Database URL", f"{mask_url_password(database_url)} ({source})"),
        ]
        width = max(len(label) for label, _ in lines) + 1
        for label, value in lines:
            self.stdout.write(f"{label + ':':<{width}} {value}")
