"""Encryption of block secrets at rest: Fernet tokens (AES-128-CBC with HMAC-SHA256, from `cryptography`).

The keys come from ORCHESTRATOR_ENCRYPTION_KEY (comma-separated; the first encrypts, every one decrypts), else from
`$ORCHESTRATOR_HOME/encryption_key` (one key a line, the first current), generated readable by its owner only on
first use. `orchestrator block rotate-key` puts a new key first and re-encrypts every document; the old keys stay
as later lines, so a process that read the file before still decrypts, and a process that meets a token none of
its keys opens reads the file again once (docs/blocks.md, "Encryption").
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from apps.core.errors import OrchestratorError
from orchestrator import config

KEY_FILE_NAME = "encryption_key"
SETTING_NAME = "ORCHESTRATOR_ENCRYPTION_KEY"


class CannotDecrypt(OrchestratorError):
    """No key opens a document's secrets: the key they were encrypted with is gone (a 409 in the API, not a 500)."""

    status_code = 409
    code = "cannot_decrypt"


_lock = threading.Lock()
# (where the keys came from, the keys) of the last read, so that a change of setting (a test) reads again.
_cache: tuple[str, MultiFernet] | None = None


def keys_from_environment() -> bool:
    """True when ORCHESTRATOR_ENCRYPTION_KEY holds the keys (rotation cannot write them)."""
    return bool(settings.ENCRYPTION_KEYS)


def key_file_path() -> Path:
    return Path(settings.ORCHESTRATOR_HOME) / KEY_FILE_NAME


def keys_source() -> str:
    """Where the keys are, as an error message names it."""
    return SETTING_NAME if keys_from_environment() else f"{key_file_path()} (or set {SETTING_NAME})"


def _file_keys() -> list[bytes]:
    """The key file's keys; the file is created with one new key, readable by its owner only, if missing."""
    path = key_file_path()
    for _ in range(50):
        try:
            text = path.read_text()
        except FileNotFoundError:
            try:
                # O_EXCL: of two processes starting at once, one creates the key and the other reads it.
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, config.PRIVATE_FILE_MODE)
            except FileExistsError:
                continue
            with os.fdopen(descriptor, "w") as file:
                file.write(Fernet.generate_key().decode() + "\n")
            continue
        keys = [line.strip().encode() for line in text.splitlines() if line.strip()]
        if keys:
            return keys
        threading.Event().wait(0.01)  # another process is writing the file it just created
    raise CannotDecrypt(f"the key file {path} is empty; restore it or set {SETTING_NAME}")


def _keys() -> tuple[str, list[bytes]]:
    if settings.ENCRYPTION_KEYS:
        return SETTING_NAME + settings.ENCRYPTION_KEYS, [
            key.strip().encode() for key in settings.ENCRYPTION_KEYS.split(",") if key.strip()
        ]
    path = key_file_path()
    return str(path), _file_keys()


def _fernet(*, reload: bool = False) -> MultiFernet:
    global _cache
    with _lock:
        if _cache is not None and not reload:
            source = SETTING_NAME + settings.ENCRYPTION_KEYS if settings.ENCRYPTION_KEYS else str(key_file_path())
            if _cache[0] == source:
                return _cache[1]
        source, keys = _keys()
        try:
            fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError:
            raise CannotDecrypt(f"a key in {keys_source()} is not a Fernet key (32 bytes in URL-safe base64)") from None
        _cache = (source, fernet)
        return fernet


def forget_keys() -> None:
    """Read the keys again on next use (after the key file changed)."""
    global _cache
    with _lock:
        _cache = None


def encrypt(secrets: dict[str, Any]) -> str:
    """A token of the secrets' JSON with the current key; "" when there are none."""
    if not secrets:
        return ""
    return _fernet().encrypt(json.dumps(secrets, separators=(",", ":")).encode()).decode()


def _undecryptable(document: str) -> CannotDecrypt:
    return CannotDecrypt(
        f"cannot decrypt the secrets of block {document}: no key in {keys_source()} opens them "
        "(restore the key they were encrypted with)"
    )


def _with_any_key(document: str, operation: Any) -> Any:
    """`operation(fernet)`; when no key opens the token and the keys are in the file, read the file once more
    (another process may have rotated them)."""
    try:
        return operation(_fernet())
    except InvalidToken:
        if keys_from_environment():
            raise _undecryptable(document) from None
    try:
        return operation(_fernet(reload=True))
    except InvalidToken:
        raise _undecryptable(document) from None


def decrypt(token: str, *, document: str) -> dict[str, Any]:
    """The secrets a token holds; CannotDecrypt naming `document` (`type/name`) and the keys' place if none opens it."""
    if not token:
        return {}
    secrets = _with_any_key(document, lambda fernet: json.loads(fernet.decrypt(token.encode())))
    if not isinstance(secrets, dict):
        raise _undecryptable(document)
    return secrets


def rotate(token: str, *, document: str) -> str:
    """The token re-encrypted with the current (first) key."""
    if not token:
        return token
    return str(_with_any_key(document, lambda fernet: fernet.rotate(token.encode()).decode()))


def key_file_prepend_new() -> Path:
    """Put a new key first in the key file, keeping the others after it (running processes still decrypt)."""
    with _lock:
        path = key_file_path()
        keys = _file_keys()
        lines = [Fernet.generate_key().decode(), *(key.decode() for key in keys)]
        config.private_file_write(path, "\n".join(lines) + "\n")
    forget_keys()
    return path
