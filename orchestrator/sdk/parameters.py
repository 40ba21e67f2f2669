"""Parameters: bind call arguments to a function's signature, validate and coerce them from type hints
(pydantic, loaded lazily), and turn them into JSON for the run record."""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import inspect
import uuid
from pathlib import PurePath
from typing import Any

from orchestrator.sdk.exceptions import ParameterValidationError


@functools.lru_cache(maxsize=4096)
def signature_of(fn: Any) -> inspect.Signature:
    return inspect.signature(fn)


def bind_arguments(fn: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Map positional and keyword arguments to parameter names (defaults applied)."""
    signature = signature_of(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ParameterValidationError(f"{getattr(fn, '__name__', fn)}() got bad arguments: {exc}") from exc
    bound.apply_defaults()
    return dict(bound.arguments)


def call_arguments(fn: Any, parameters: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Split a parameters dict back into (args, kwargs) for calling `fn` (handles *args and **kwargs)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, parameter in signature_of(fn).parameters.items():
        if name not in parameters:
            continue
        value = parameters[name]
        if parameter.kind == parameter.VAR_POSITIONAL:
            args.extend(value)
        elif parameter.kind == parameter.VAR_KEYWORD:
            kwargs.update(value)
        elif parameter.kind == parameter.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[name] = value
    return args, kwargs


_models: dict[Any, Any] = {}


def _model_for(fn: Any) -> Any:
    model = _models.get(fn)
    if model is None:
        import pydantic

        hints = _type_hints(fn)
        fields: dict[str, Any] = {}
        for name, parameter in inspect.signature(fn).parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation = hints.get(name, Any)
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[name] = (annotation, default)
        model = pydantic.create_model(
            f"{getattr(fn, '__name__', 'flow')}_parameters",
            __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
            **fields,
        )
        _models[fn] = model
    return model


def _type_hints(fn: Any) -> dict[str, Any]:
    """The parameters' type hints, resolved one by one when they cannot all be: a hint naming something local
    to the function that defined the flow (under `from __future__ import annotations`) is left unchecked
    rather than turning off the checks of every other parameter."""
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:
        pass
    try:
        local_names = dict(inspect.getclosurevars(fn).nonlocals)
    except (TypeError, ValueError):
        local_names = {}
    hints: dict[str, Any] = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():

        def holder() -> None:
            pass

        holder.__annotations__ = {name: annotation}
        try:
            hints[name] = typing.get_type_hints(holder, getattr(fn, "__globals__", None), local_names)[name]
        except Exception:
            continue
    return hints


def validate_parameters(fn: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """Coerce parameters to their type hints; a mismatch raises ParameterValidationError naming each parameter."""
    import pydantic

    model = _model_for(fn)
    plain = {name: value for name, value in parameters.items() if name in model.model_fields}
    try:
        validated = model.model_validate(plain)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'parameters'}: {error['msg']}" for error in exc.errors()
        )
        raise ParameterValidationError(f"invalid parameters for {fn.__name__}(): {problems}") from None
    coerced = dict(parameters)
    for name in plain:
        coerced[name] = getattr(validated, name)
    return coerced


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a parameter value (objects that JSON cannot hold are recorded by their repr)."""
    if depth > 20:
        return repr(value)
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item, depth + 1) for item in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | decimal.Decimal | PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"), depth + 1)
    return repr(value)
