"""Secrets at rest: never in clear in the database (SQLite file bytes, the PostgreSQL row), key file 0600,
rotation with `block rotate-key` (file keys and ORCHESTRATOR_ENCRYPTION_KEY), and a clear error when no key
opens a document."""

from __future__ import annotations

import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from rest_framework.test import APIClient

from apps.blocks import encryption, selectors, services
from apps.blocks.models import BlockDocument
from tests.api.support import assert_error

SECRET = "correct-horse-battery-staple-7f3a"


def row_text(document: BlockDocument) -> str:
    """The document's row as the database returns it, every column as text."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM blocks_blockdocument WHERE id = %s",
            [document.pk.hex if connection.vendor == "sqlite" else document.pk],
        )
        rows = cursor.fetchall()
    assert len(rows) == 1, rows
    return repr(rows)


def database_bytes() -> bytes:
    """Everything the database holds, as bytes: the SQLite file (and its WAL), or PostgreSQL's table as text."""
    if connection.vendor == "sqlite":
        # Read by another process: closing a file descriptor of the database in this one drops every POSIX lock
        # this process's SQLite connections hold on it, and a subprocess sharing the test database (the services
        # tests) then thinks it is the last user, deletes the WAL and this process's next query fails with "disk
        # I/O error" (https://www.sqlite.org/howtocorrupt.html, 2.2).
        name = str(connection.settings_dict["NAME"])
        read = (
            "import pathlib, sys\n"
            "for path in map(pathlib.Path, sys.argv[1:]):\n"
            "    if path.exists():\n"
            "        sys.stdout.buffer.write(path.read_bytes())\n"
        )
        return subprocess.run([sys.executable, "-c", read, name, f"{name}-wal"], capture_output=True, check=True).stdout
    with connection.cursor() as cursor:
        cursor.execute("SELECT t::text FROM blocks_blockdocument t")
        return repr(cursor.fetchall()).encode()


@pytest.mark.django_db(transaction=True)
def test_the_database_never_holds_a_secret_in_clear(key_home: Path) -> None:
    """A stolen database file (or dump) reveals no secret: they are Fernet tokens, the key is elsewhere."""
    services.block_document_create(block_type="secret", name="db", data={"value": SECRET})
    services.block_document_create(
        block_type="remote-file-system", name="lake", data={"basepath": "s3://b/p", "settings": {"secret": SECRET}}
    )
    document = BlockDocument.objects.get(name="db")
    assert SECRET not in row_text(document) and document.encrypted_secrets
    if connection.vendor == "sqlite":
        assert Path(connection.settings_dict["NAME"]).exists()
    held = database_bytes()
    assert b"s3://b/p" in held  # the non-secret data is there to read
    assert SECRET.encode() not in held
    assert selectors.block_document_data(document=document, include_secrets=True) == {"value": SECRET}
    key_file = key_home / encryption.KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


pytestmark = pytest.mark.django_db


def rotate() -> str:
    out = StringIO()
    call_command("block", "rotate-key", stdout=out)
    return out.getvalue()


def test_rotate_key_with_the_key_file_reencrypts_and_keeps_the_old_key(key_home: Path) -> None:
    """After `block rotate-key` every document reads back, its row holds a new token, and the old key stays as a
    later line (processes that read the file before still decrypt)."""
    document = services.block_document_create(block_type="secret", name="db", data={"value": SECRET})[0]
    old_token = document.encrypted_secrets
    old_keys = (key_home / encryption.KEY_FILE_NAME).read_text().split()
    message = rotate()
    assert "re-encrypted 1 block document(s)" in message
    keys = (key_home / encryption.KEY_FILE_NAME).read_text().split()
    assert len(keys) == 2 and keys[1:] == old_keys
    document.refresh_from_db()
    assert document.encrypted_secrets != old_token and old_token not in row_text(document)
    assert Fernet(keys[0].encode()).decrypt(document.encrypted_secrets.encode())  # the new key encrypts now
    assert selectors.block_document_data(document=document, include_secrets=True) == {"value": SECRET}
    assert stat.S_IMODE((key_home / encryption.KEY_FILE_NAME).stat().st_mode) == 0o600


def test_a_process_whose_keys_are_stale_reads_the_key_file_again(key_home: Path) -> None:
    """Another process rotated the key: this one, holding the old keys, re-reads the file once and decrypts."""
    document = services.block_document_create(block_type="secret", name="db", data={"value": SECRET})[0]
    path = key_home / encryption.KEY_FILE_NAME
    new_key = Fernet.generate_key()
    path.write_text(new_key.decode() + "\n" + path.read_text())  # as the other process's rotation writes it
    token = Fernet(new_key).encrypt(b'{"value": "from-the-other-process"}').decode()
    BlockDocument.objects.filter(pk=document.pk).update(encrypted_secrets=token)
    document.refresh_from_db()
    assert selectors.block_document_secrets(document=document) == {"value": "from-the-other-process"}


def test_rotate_key_with_keys_from_the_environment(settings: Any) -> None:
    """With ORCHESTRATOR_ENCRYPTION_KEY the command cannot write the keys: it re-encrypts with the first and says
    the old ones can be dropped."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = old
    document = services.block_document_create(block_type="secret", name="db", data={"value": SECRET})[0]
    settings.ENCRYPTION_KEYS = f"{new},{old}"
    message = rotate()
    assert "first key of ORCHESTRATOR_ENCRYPTION_KEY" in message and "dropped" in message
    settings.ENCRYPTION_KEYS = new  # the old key dropped, as the message says
    document.refresh_from_db()
    assert selectors.block_document_data(document=document, include_secrets=True) == {"value": SECRET}


def test_a_token_no_key_opens_is_a_clear_409_not_a_500(settings: Any, admin_api: APIClient) -> None:
    """The key was lost or changed: reading secrets names the block and the setting; masked reads still work."""
    settings.ENCRYPTION_KEYS = Fernet.generate_key().decode()
    services.block_document_create(
        block_type="smtp", name="mail", data={"host": "h", "password": "p", "from_address": "a@b.c"}
    )
    settings.ENCRYPTION_KEYS = Fernet.generate_key().decode()
    refused = assert_error(
        admin_api.get("/api/block_documents/smtp/mail/?include_secrets=true"), 409, code="cannot_decrypt"
    )
    assert "smtp/mail" in refused["message"] and "ORCHESTRATOR_ENCRYPTION_KEY" in refused["message"]
    masked = admin_api.get("/api/block_documents/smtp/mail/")
    assert masked.status_code == 200 and masked.json()["data"]["password"] == "********"
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="smtp/mail"):
        call_command("block", "rotate-key", stdout=out, stderr=err)


def test_an_unusable_key_setting_is_reported_at_start() -> None:
    """A malformed ORCHESTRATOR_ENCRYPTION_KEY is one line naming the setting, like every other setting."""
    from orchestrator import config

    assert config.SETTINGS["ORCHESTRATOR_ENCRYPTION_KEY"].validate is not None
    validate = config.SETTINGS["ORCHESTRATOR_ENCRYPTION_KEY"].validate
    assert validate(Fernet.generate_key().decode() + "," + Fernet.generate_key().decode()) is None
    assert "key 2 is not a Fernet key" in (validate(Fernet.generate_key().decode() + ",short") or "")
