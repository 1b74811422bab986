"""Load plain TOML data into frozen dataclasses, strictly.

Every field of a schema dataclass carries a `doc` in its metadata; unknown keys,
missing required keys and values of the wrong type are errors that name the file
and the dotted key, e.g. ``assignments/hw1/assignment.toml: tasks[2].pionts:
unknown key (known: id, title, points, tags, gpu)``.

Supported field types: str, int, float, bool, datetime, Literal[...], unions
(`X | None`, `str | int`: the first that fits), tuple[X, ...], dict[str, X] and
nested schema dataclasses. The same loader reads JSON (None fits `X | None`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SchemaError(ValueError):
    """A value does not fit the schema; `key` is the dotted path to it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


def doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with documentation (and optionally a default)."""
    return dataclasses.field(metadata={"doc": text}, **kwargs)


def load(cls: type[T], data: Any, key: str = "") -> T:
    """Build the schema dataclass `cls` from TOML data, checking every key."""
    if not isinstance(data, Mapping):
        raise SchemaError(key, f"expected a table, got {_type_name(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SchemaError(_join(key, unknown[0]), f"unknown key (known: {', '.join(fields)})")
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], _join(key, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SchemaError(_join(key, name), "required key is missing")
    return cls(**values)


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, type, doc) for every field of `cls`, nested ones included."""
    rows = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        key = _join(prefix, field.name)
        rows.append((key, _hint_name(hint), field.metadata.get("doc", "")))
        inner = _inner_dataclass(hint)
        if inner is not None:
            sub = f"{key}[]" if typing.get_origin(hint) is tuple else key
            rows.extend(describe(inner, sub))
    return rows


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None  # JSON's null (TOML has none)
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return _convert(option, value, key)
            except SchemaError:
                continue
        return _convert(options[-1], value, key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SchemaError(key, f"expected a table, got {_type_name(value)}")
        return {
            _convert(args[0], k, key): _convert(args[1], v, _join(key, str(k)))
            for k, v in value.items()
        }
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise SchemaError(key, f"must be one of {allowed}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise SchemaError(key, f"expected an array, got {_type_name(value)}")
        return tuple(_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return load(hint, value, key)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(key, f"expected a number, got {_type_name(value)}")
        return float(value)
    if hint is int and isinstance(value, bool):
        raise SchemaError(key, "expected an integer, got a boolean")
    if hint is dt.datetime and isinstance(value, dt.datetime) and value.tzinfo is None:
        raise SchemaError(key, "a date-time needs a UTC offset, e.g. 2027-02-05T23:59:00-05:00")
    if not isinstance(value, hint):
        raise SchemaError(key, f"expected {_hint_name(hint)}, got {_type_name(value)}")
    return value


def _inner_dataclass(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None


def _hint_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_hint_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is tuple:
        return f"array of {_hint_name(args[0])}"
    if origin is dict:
        return f"table of {_hint_name(args[1])}"
    if dataclasses.is_dataclass(hint):
        return "table"
    if hint is type(None):
        return "absent"
    return {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        dt.datetime: "date-time",
    }.get(hint, getattr(hint, "__name__", str(hint)))


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
