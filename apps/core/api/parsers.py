"""A JSON parser that refuses what a database would later choke on, so bad input is a 400, never a 500."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from apps.core.errors import InvalidInput, PayloadTooLarge

MAX_DEPTH = 64
MAX_INTEGER = 2**63 - 1
# NUL cannot be stored by PostgreSQL; a lone surrogate (from a "\ud800" escape) cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _NonStandardConstant(str):
    """NaN, Infinity or -Infinity as Python's json reads them; kept as a marker so the error can name the field."""


def _path(segments: tuple[str | int, ...]) -> str:
    """Render a location the way the error handler names fields: `state.state_details.x`, `[0].message`."""
    text = ""
    for segment in segments:
        text += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if text else segment)
    return text


def _refuse(message: str, segments: tuple[str | int, ...]) -> None:
    raise InvalidInput(message, field=_path(segments) or "body")


def _check_string(value: str, segments: tuple[str | int, ...], what: str) -> None:
    match = _UNSTORABLE.search(value)
    if match is None:
        return
    if match.group() == "\x00":
        _refuse(f"{what} may not contain NUL (\\u0000) characters", segments)
    _refuse(f"{what} may not contain unpaired surrogates (\\ud800-\\udfff)", segments)


def check_json_value(value: Any, segments: tuple[str | int, ...] = ()) -> None:
    """Refuse values no database column can hold, naming where they are: NUL, lone surrogates,
    non-finite or 64-bit-overflowing numbers, and nesting deeper than MAX_DEPTH."""
    if len(segments) > MAX_DEPTH:
        _refuse(f"JSON nested deeper than {MAX_DEPTH} levels", segments[:1])
    if isinstance(value, _NonStandardConstant):
        _refuse(f"{value} is not valid JSON (numbers must be finite)", segments)
    elif isinstance(value, str):
        _check_string(value, segments, "strings")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key, segments, "keys")
            check_json_value(item, (*segments, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_value(item, (*segments, index))
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int) and abs(value) > MAX_INTEGER:
        _refuse("integers must fit in 64 bits", segments)
    elif isinstance(value, float) and not math.isfinite(value):
        _refuse("numbers must be finite (this one overflows a double)", segments)


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = _content_length(request)
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes is larger than the limit of {limit} bytes")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_NonStandardConstant)
        except UnicodeDecodeError as exc:
            raise ParseError("request body is not UTF-8") from exc
        except RecursionError as exc:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
        except ValueError as exc:
            raise ParseError(f"malformed JSON: {exc}") from exc
        check_json_value(value)
        return value


def _content_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else None
    except (TypeError, ValueError):
        return None
