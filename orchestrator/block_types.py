"""Block types: the typed configurations the server stores (apps/blocks) and the SDK loads (orchestrator.blocks).

Plain pydantic, no Django and no SDK, so both sides validate with the same classes, as they share
`orchestrator.states`. A type has a slug (`remote-file-system`), a version, a description and fields; fields made
with `secret_field()` are secrets: encrypted at rest by the server, read back as `"********"` (each value of a
secret mapping), shown only to admin-scoped keys that ask for them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MASK = "********"
SECRET_MARK = "secret"

__all__ = [
    "BLOCK_TYPES",
    "MASK",
    "BlockData",
    "BlockTypeError",
    "ValidationError",
    "block_type_get",
    "data_masked",
    "data_validate",
    "secret_field",
]


def secret_field(default: Any = ..., **kwargs: Any) -> Any:
    """A field whose value is a secret (a password input in the admin, never shown back)."""
    return Field(default, json_schema_extra={SECRET_MARK: True}, **kwargs)


class BlockData(BaseModel):
    """The fields of one block type; subclasses set the class variables."""

    model_config = ConfigDict(extra="forbid")

    slug: ClassVar[str] = ""
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(SECRET_MARK)
        ]

    @classmethod
    def schema_for_forms(cls) -> dict[str, Any]:
        """The JSON schema of the fields, with `secret_fields` listed (the admin and the API show it)."""
        schema = cls.model_json_schema()
        schema["secret_fields"] = cls.secret_fields()
        return schema


class SecretBlock(BlockData):
    slug: ClassVar[str] = "secret"
    description: ClassVar[str] = "A secret string: a password, a token, a connection string."

    value: str = secret_field(min_length=1)


class JSONBlock(BlockData):
    slug: ClassVar[str] = "json"
    description: ClassVar[str] = "Any JSON value: settings shared by flows."

    value: Any


class LocalFileSystemBlock(BlockData):
    slug: ClassVar[str] = "local-file-system"
    description: ClassVar[str] = "A folder on the machine that runs the flow."

    basepath: str = Field(min_length=1)


class RemoteFileSystemBlock(BlockData):
    slug: ClassVar[str] = "remote-file-system"
    description: ClassVar[str] = "A folder in remote storage through fsspec, e.g. s3://bucket/prefix."

    basepath: str = Field(min_length=1, description="a URL with a scheme, e.g. s3://bucket/prefix")
    settings: dict[str, Any] = secret_field(
        default_factory=dict,
        description="fsspec storage options, e.g. key, secret, client_kwargs.endpoint_url",
    )

    @field_validator("basepath")
    @classmethod
    def _has_scheme(cls, value: str) -> str:
        if "://" not in value or not urlsplit(value).scheme:
            raise ValueError("must be a URL with a scheme, e.g. s3://bucket/prefix")
        return value


class WebhookBlock(BlockData):
    slug: ClassVar[str] = "webhook"
    description: ClassVar[str] = "An HTTP endpoint that notifications are sent to."

    url: str = Field(min_length=1)
    method: Literal["POST", "PUT", "PATCH", "GET"] = "POST"
    headers: dict[str, str] = secret_field(default_factory=dict, description="sent with each call, e.g. a token")

    @field_validator("url")
    @classmethod
    def _is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value


class SlackWebhookBlock(BlockData):
    slug: ClassVar[str] = "slack-webhook"
    description: ClassVar[str] = 'A Slack-compatible incoming webhook: messages are posted as {"text": ...}.'

    url: str = secret_field(min_length=1, description="the incoming webhook's URL (its path is the credential)")

    @field_validator("url")
    @classmethod
    def _is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value


class SMTPBlock(BlockData):
    slug: ClassVar[str] = "smtp"
    description: ClassVar[str] = "An SMTP server that notifications are mailed through."

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    username: str | None = None
    password: str | None = secret_field(None)
    tls: bool = Field(True, description="STARTTLS after connecting")
    from_address: str = Field(min_length=3)

    @field_validator("from_address")
    @classmethod
    def _is_address(cls, value: str) -> str:
        if "@" not in value.strip("@"):
            raise ValueError("must be an email address")
        return value


BLOCK_TYPES: dict[str, type[BlockData]] = {
    block.slug: block
    for block in (
        SecretBlock,
        JSONBlock,
        LocalFileSystemBlock,
        RemoteFileSystemBlock,
        WebhookBlock,
        SlackWebhookBlock,
        SMTPBlock,
    )
}


class BlockTypeError(ValueError):
    """No block type has this slug."""


def block_type_get(slug: str) -> type[BlockData]:
    try:
        return BLOCK_TYPES[slug]
    except KeyError:
        raise BlockTypeError(f"unknown block type {slug!r}; the types are {', '.join(BLOCK_TYPES)}") from None


def data_validate(slug: str, data: Any) -> dict[str, Any]:
    """`data` checked against its type and completed with defaults (pydantic's ValidationError names the field)."""
    return block_type_get(slug).model_validate(data).model_dump(mode="json")


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    return None if value is None else MASK


def data_masked(slug: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every secret value replaced by MASK (the keys of a secret mapping stay readable)."""
    secret = set(block_type_get(slug).secret_fields())
    return {key: (_mask(value) if key in secret else value) for key, value in data.items()}
