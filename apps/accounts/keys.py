"""The API key format: `orch_` and 43 URL-safe characters (32 random bytes); the database keeps its SHA-256 only."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "orch_"
# Characters of a key kept in clear to recognise it in `api-key ls` and the admin ("orch_AbCdEfG…").
VISIBLE_CHARACTERS = 12


def key_generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """SHA-256 is enough for 256 random bits: no dictionary to slow down, so no key-stretching either."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_visible_prefix(key: str) -> str:
    return key[:VISIBLE_CHARACTERS]


def key_is_well_formed(key: str) -> bool:
    """A key as `key_generate` makes them: printable, no spaces, of a sane length (anything else is refused
    before a database lookup)."""
    return 16 <= len(key) <= 128 and key.isascii() and key.isprintable() and " " not in key
