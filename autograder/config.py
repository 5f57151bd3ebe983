"""One typed loader for dlgrade's TOML files (assignment.toml, dlgrade.toml): a table becomes a frozen dataclass.

Every value is checked against its field's type hint (str, int, float, bool, Path, tuple[str, ...], a nested
dataclass, a tuple of dataclasses, `X | None`) and against the range its field declares in `metadata`:
`{"min": 1}`, `{"max": 100}`, `{"choices": ("cpu", "gpu")}`; numbers are never negative unless a field allows it.
A wrong value fails where it is read, naming the file, the key and the value: no letters of a string become a
tuple, no unknown key is ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from autograder.errors import ConfigError

T = TypeVar("T")
NONE = types.NoneType


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at `path` as a dict ({} when it does not exist); a syntax error names the file and line."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load(cls: type[T], raw: Any, *, file: Path, key: str = "", fixed: dict[str, Any] | None = None) -> T:
    """`raw` (a TOML table) as a `cls`, every value checked; `key` is the table's dotted name for messages and
    `fixed` are values that do not come from the file (an assignment's name)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {key or 'the file'} must be a table of settings, found {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    settable = sorted(set(fields) - set(fixed or {}))
    unknown = sorted(set(raw) - set(settable))
    if unknown:
        where = f" in [{key}]" if key else ""
        raise ConfigError(f"{file}: unknown setting(s){where}: {', '.join(unknown)}; known: {', '.join(settable)}")
    hints = _hints(cls)
    values = {name: _value(hints[name], value, fields[name].metadata, file=file, key=_join(key, name))
              for name, value in raw.items()}
    return cls(**values, **(fixed or {}))


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _value(hint: Any, value: Any, meta: typing.Mapping[str, Any], *, file: Path, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None: TOML has no null, so the value is an X
        (hint,) = [a for a in args if a is not NONE]
        return _value(hint, value, meta, file=file, key=key)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{file}: {key} must be a list, e.g. {key.rsplit('.', 1)[-1]} = [...], found {value!r}")
        return tuple(_value(args[0], item, meta, file=file, key=f"{key}[{number}]")
                     for number, item in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return load(hint, value, file=file, key=key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{file}: {key} must be true or false, found {value!r}")
        return value
    if hint in (int, float):
        wanted = (int,) if hint is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            kind = "a whole number" if hint is int else "a number"
            raise ConfigError(f"{file}: {key} must be {kind}, found {value!r}")
        _in_range(value, meta, file=file, key=key)
        return hint(value)
    if hint in (str, Path):
        if not isinstance(value, str):
            raise ConfigError(f"{file}: {key} must be a string, found {value!r}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{file}: {key} = {value!r}; choose one of {', '.join(map(repr, choices))}")
        return Path(value).expanduser() if hint is Path else value
    raise TypeError(f"{key}: no TOML reading for {hint!r}")  # a field of ours that this loader does not cover


def _in_range(value: float, meta: typing.Mapping[str, Any], *, file: Path, key: str) -> None:
    smallest, largest = meta.get("min", 0), meta.get("max")
    if value < smallest:
        raise ConfigError(f"{file}: {key} = {value!r} must be at least {smallest}")
    if largest is not None and value > largest:
        raise ConfigError(f"{file}: {key} = {value!r} must be at most {largest}")
