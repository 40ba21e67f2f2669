"""Blocks in the SDK: typed configurations saved on the server and loaded by flows.

    from orchestrator.blocks import Secret, RemoteFileSystem
    Secret(value="s3cr3t").save("db-password", overwrite=True)
    password = Secret.load("db-password").get()
    RemoteFileSystem.load("lake").write_path("daily/report.csv", b"...")

Each class is the block type of `orchestrator.block_types` (the same pydantic fields and validation as the server)
plus `Block`: `save(name)` and `load(name)` through the API client (`orchestrator.client.get_client()`: HTTP when
ORCHESTRATOR_API_URL is set, in-process otherwise). Importing this module is cheap: fsspec, httpx and smtplib load
when a block first uses them.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from pydantic import PrivateAttr, ValidationError

from orchestrator.block_types import (
    MASK,
    BlockData,
    JSONBlock,
    LocalFileSystemBlock,
    RemoteFileSystemBlock,
    SecretBlock,
    SlackWebhookBlock,
    SMTPBlock,
    WebhookBlock,
    data_masked,
)
from orchestrator.client import Conflict, Forbidden, InvalidInput, NotFound, get_client
from orchestrator.sdk.exceptions import BlockError, BlockNotFound, BlockStorageError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "JSON",
    "SMTP",
    "Block",
    "BlockError",
    "BlockNotFound",
    "BlockStorageError",
    "FileSystem",
    "LocalFileSystem",
    "RemoteFileSystem",
    "Secret",
    "SlackWebhook",
    "Webhook",
    "block_load",
]


def _cause(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _holds_mask(value: Any) -> bool:
    """Whether masked data hides a value (a secret that is set), so it cannot stand in for the real data."""
    if isinstance(value, dict):
        return any(_holds_mask(item) for item in value.values())
    return isinstance(value, str) and value == MASK


def _without_masks(value: Any) -> Any:
    """`value` with every masked secret left out (inside mappings too); a field that is only a mask becomes its
    default (left out of the data)."""
    if isinstance(value, dict):
        return {key: _without_masks(item) for key, item in value.items() if item != MASK}
    return value


class Block(BlockData):
    """What every SDK block adds to its type's fields: a name, `save` and `load`.

    A subclass lists `Block` first and its type from `orchestrator.block_types` second; the type gives `slug`.
    """

    _block_name: str | None = PrivateAttr(default=None)
    _block_id: str | None = PrivateAttr(default=None)
    _secrets_withheld: bool = PrivateAttr(default=False)

    @property
    def block_name(self) -> str | None:
        """The name this block was saved or loaded under (None for a block made in code and not saved)."""
        return self._block_name

    @property
    def block_slug(self) -> str | None:
        """`type/name`, e.g. `remote-file-system/lake`, as `result_storage=` and the CLI name a block."""
        return f"{self.slug}/{self._block_name}" if self._block_name else None

    def save(self, name: str, *, overwrite: bool = False) -> str:
        """Store this block on the server under `name` and return the document's id.

        A name already taken raises BlockError unless `overwrite=True`, which replaces its data."""
        data = self.model_dump(mode="json")
        try:
            document = get_client().create_block_document(self.slug, name, data, overwrite=overwrite)
        except Conflict as exc:
            raise BlockError(
                f"cannot save block '{self.slug}/{name}': {exc.message}; pass overwrite=True to replace it"
            ) from None
        except (Forbidden, InvalidInput) as exc:
            raise BlockError(f"cannot save block '{self.slug}/{name}': {exc.message}") from None
        self._block_name = name
        self._block_id = str(document["id"])
        return self._block_id

    @property
    def secrets_withheld(self) -> bool:
        """True when this block was loaded with `secrets_optional=True` by a key that may not read its secrets:
        its secret values were left out (see `load`)."""
        return self._secrets_withheld

    @classmethod
    def load(cls, name: str, *, secrets_optional: bool = False) -> Self:
        """The block saved as `name`, with the real values of its secret fields. Reading secret values needs an
        admin-scoped key; another key still loads a block whose secret fields are empty (or a type without any).

        With `secrets_optional=True` a key that may not read the secrets loads the block without them: every
        masked value is left out (a `remote-file-system` block then takes its credentials from the environment,
        as fsspec does) and `secrets_withheld` is True, so an error can say why the storage refused."""
        where = f"{cls.slug}/{name}"
        client = get_client()
        withheld = False
        try:
            try:
                document = client.read_block_document(cls.slug, name, include_secrets=bool(cls.secret_fields()))
            except Forbidden as refused:
                document = client.read_block_document(cls.slug, name)
                if any(_holds_mask(document["data"].get(field)) for field in cls.secret_fields()):
                    if not secrets_optional:
                        raise BlockError(f"cannot load block '{where}': {refused.message}") from None
                    document = {**document, "data": _without_masks(document["data"])}
                    withheld = True
        except NotFound:
            raise BlockNotFound(
                f"no block '{where}'; create it with {cls.__name__}(...).save({name!r}) or in the admin"
            ) from None
        except Forbidden as exc:
            raise BlockError(f"cannot load block '{where}': {exc.message}") from None
        try:
            block = cls.model_validate(document["data"])
        except ValidationError as exc:  # a document saved by a newer type version than this SDK's
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "data"
            raise BlockError(
                f"block '{where}' (type version {document.get('block_type_version')}) does not fit this SDK's "
                f"{cls.__name__} (version {cls.version}): {field}: {first['msg']}"
            ) from None
        block._block_name = name
        block._block_id = str(document["id"])
        block._secrets_withheld = withheld
        return block

    def __repr_args__(self) -> Any:
        """pydantic's repr, with every secret value masked (a block is logged and printed like any object)."""
        fields = {str(key): value for key, value in super().__repr_args__()}
        return list(data_masked(self.slug, fields).items())


class Secret(Block, SecretBlock):
    """A secret string; `get()` returns it. Its repr never shows it."""

    def get(self) -> str:
        return self.value


class JSON(Block, JSONBlock):
    """Any JSON value; `get()` returns it."""

    def get(self) -> Any:
        return self.value


class FileSystem(Block):
    """A place that stores bytes under relative paths (results, files a flow shares)."""

    def write_path(self, path: str, content: bytes) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_path(self, path: str) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def exists(self, path: str) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class LocalFileSystem(FileSystem, LocalFileSystemBlock):
    """A folder on the machine that runs the flow; a path is relative to `basepath`."""

    def _resolve(self, path: str) -> Path:
        return Path(self.basepath).expanduser() / path.lstrip("/")

    def write_path(self, path: str, content: bytes) -> str:
        """Write `content` to `basepath/path` (folders made as needed, a temporary file renamed into place, so a
        reader never sees half a file); returns the full path."""
        target = self._resolve(path)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(content)
            temporary.replace(target)
        except OSError as exc:
            with contextlib.suppress(OSError):  # nothing to clean up when the folder could not be made
                temporary.unlink(missing_ok=True)
            raise BlockStorageError(f"cannot write {target}: {_cause(exc)}") from exc
        return str(target)

    def read_path(self, path: str) -> bytes:
        target = self._resolve(path)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise BlockStorageError(f"cannot read {target}: {_cause(exc)}") from exc

    def exists(self, path: str) -> bool:
        return self._resolve(path).is_file()


class RemoteFileSystem(FileSystem, RemoteFileSystemBlock):
    """A folder in remote storage through fsspec (`s3://bucket/prefix` through s3fs); `settings` are fsspec's
    storage options, e.g. `{"key": ..., "secret": ..., "client_kwargs": {"endpoint_url": ...}}`."""

    def filesystem(self) -> AbstractFileSystem:
        """The fsspec file system of `basepath`'s scheme, made with `settings` (fsspec caches equal ones)."""
        import fsspec

        protocol = urlsplit(self.basepath).scheme
        try:
            return fsspec.filesystem(protocol, **self.settings)
        except (ImportError, ValueError, TypeError) as exc:
            raise BlockStorageError(f"cannot open {self.basepath}: {_cause(exc)}") from exc

    def _url(self, path: str) -> str:
        return f"{self.basepath.rstrip('/')}/{path.lstrip('/')}"

    def write_path(self, path: str, content: bytes) -> str:
        """Write `content` to `basepath/path` and return its URL. An object store's PUT is all or nothing, so
        the object exists whole or not at all."""
        url = self._url(path)
        filesystem = self.filesystem()
        try:
            filesystem.pipe_file(url, content)
        except Exception as exc:  # fsspec back ends raise their own kinds (botocore, aiohttp, OSError)
            raise BlockStorageError(f"cannot write {url}: {_cause(exc)}") from exc
        return url

    def read_path(self, path: str) -> bytes:
        url = self._url(path)
        filesystem = self.filesystem()
        try:
            return bytes(filesystem.cat_file(url))
        except Exception as exc:
            raise BlockStorageError(f"cannot read {url}: {_cause(exc)}") from exc

    def exists(self, path: str) -> bool:
        """Whether an object is stored at `basepath/path` (BlockStorageError when the storage cannot tell)."""
        url = self._url(path)
        filesystem = self.filesystem()
        try:
            filesystem.info(url)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise BlockStorageError(f"cannot look for {url}: {_cause(exc)}") from exc
        return True


class Webhook(Block, WebhookBlock):
    """An HTTP endpoint; `call(payload)` sends the payload as JSON with the block's headers."""

    def call(self, payload: dict[str, Any], *, timeout_seconds: float = 10.0) -> int:
        """Send `payload` and return the answer's status code; BlockError when there is no answer."""
        import httpx

        try:
            response = httpx.request(
                self.method,
                self.url,
                json=None if self.method == "GET" else payload,
                params=payload if self.method == "GET" else None,
                headers=self.headers,
                timeout=timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise BlockError(f"webhook {self.method} {self.url} failed: {_cause(exc)}") from exc
        return response.status_code


class SlackWebhook(Block, SlackWebhookBlock):
    """A Slack-compatible incoming webhook; `post(text)` posts `{"text": text}`."""

    def post(self, text: str, *, timeout_seconds: float = 10.0) -> int:
        """Post one message and return the answer's status code; BlockError when there is no answer."""
        import httpx

        try:
            response = httpx.post(self.url, json={"text": text}, timeout=timeout_seconds)
        except httpx.HTTPError as exc:
            raise BlockError(f"slack webhook post failed: {_cause(exc)}") from exc
        return response.status_code


class SMTP(Block, SMTPBlock):
    """An SMTP server; `send(to, subject, body)` mails a plain-text message from `from_address`."""

    def send(self, to: str | list[str], subject: str, body: str, *, timeout_seconds: float = 10.0) -> None:
        """Send one message (STARTTLS first when `tls`, then a login when `username` is set)."""
        import smtplib
        import ssl
        from email.message import EmailMessage

        recipients = [to] if isinstance(to, str) else list(to)
        message = EmailMessage()
        message["From"] = self.from_address
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message.set_content(body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=timeout_seconds) as connection:
                if self.tls:
                    connection.starttls(context=ssl.create_default_context())
                if self.username:
                    connection.login(self.username, self.password or "")
                connection.send_message(message, to_addrs=recipients)
        except (OSError, smtplib.SMTPException) as exc:
            raise BlockError(f"cannot send mail through {self.host}:{self.port}: {_cause(exc)}") from exc


SDK_BLOCKS: dict[str, type[Block]] = {
    block.slug: block for block in (Secret, JSON, LocalFileSystem, RemoteFileSystem, Webhook, SlackWebhook, SMTP)
}


def block_load(slug: str, *, secrets_optional: bool = False) -> Block:
    """The block named by `type/name`, e.g. `remote-file-system/lake` (`secrets_optional`: see `Block.load`)."""
    block_type, _, name = slug.partition("/")
    if not name or block_type not in SDK_BLOCKS:
        raise BlockError(f"{slug!r} does not name a block: use TYPE/NAME with a type among {', '.join(SDK_BLOCKS)}")
    return SDK_BLOCKS[block_type].load(name, secrets_optional=secrets_optional)
