"""Each blocks test has its own key file (a fresh ORCHESTRATOR_HOME) and no ORCHESTRATOR_ENCRYPTION_KEY."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def key_home(settings: Any, tmp_path: Path) -> Iterator[Path]:
    from apps.blocks import encryption

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    settings.ORCHESTRATOR_HOME = home
    settings.ENCRYPTION_KEYS = None
    encryption.forget_keys()
    yield home
    encryption.forget_keys()
