"""A JSON parser that refuses what a database would later choke on, so bad input is a 400, never a 500."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def check_json_value(value: Any, depth: int = 0) -> None:
    """Refuse NUL characters (PostgreSQL cannot store them) and nesting deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ParseError("strings may not contain NUL (\\u0000) characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ParseError("keys may not contain NUL (\\u0000) characters")
            check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63 - 1:
        raise ParseError("integers must fit in 64 bits")


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        raw = stream.read(settings.API_MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > settings.API_MAX_BODY_BYTES:
            raise ParseError(f"request body larger than {settings.API_MAX_BODY_BYTES} bytes")
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError as exc:
            raise ParseError("request body is not UTF-8") from exc
        except RecursionError as exc:
            raise ParseError("JSON nested too deeply") from exc
        except ValueError as exc:
            raise ParseError(f"malformed JSON: {exc}") from exc
        check_json_value(value)
        return value
