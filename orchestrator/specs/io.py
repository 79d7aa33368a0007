"""Typed loading of nested frozen dataclasses from YAML-shaped dicts, with one-line errors.

Every error names the file, the key path, the value and what is allowed, so a researcher can
fix a spec without reading code. Bounds and choices come from the fields' `param` metadata.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from trainables.config import allowed, violates
from orchestrator.specs.yaml_text import YamlMeaningError, load_text


# Every integer of a spec (epochs, seeds, indices, sizes) fits in 31 bits: larger values are typos,
# and would overflow the int32/int64 arithmetic of seeds and index tensors.
MAX_INT = 2**31 - 1


class SpecError(ValueError):
    """A spec, override or file is invalid; str(e) is the one-line message for the user."""


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such file; give the path of a YAML spec (see specs/)")
    try:
        data = load_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file; give the path of a YAML spec (see specs/)") from None
    except YamlMeaningError as e:
        raise SpecError(f"{path}: {e.message}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise SpecError(f"{path}:{line} is not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the top level must be a mapping of keys to values")
    return data


def apply_override(data: dict, assignment: str, where: str = "--set") -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to the raw dict, in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise SpecError(f"{where} {assignment!r}: expected KEY=VALUE, e.g. protocol.epochs=3")
    try:
        value = load_text(text)
    except YamlMeaningError as e:
        raise SpecError(f"{where} {assignment!r}: {e.message.replace(' at line 1', '')}") from None
    except yaml.YAMLError:
        value = text
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"{where} {assignment!r}: {part} is not a section; cannot set {key}")
    node[parts[-1]] = value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def convert(tp: Any, value: Any, key: str, origin: str) -> Any:
    """Check `value` against type `tp` (int, float, bool, str, X | None, tuple[X, ...], dataclass)."""
    def fail(expected: str):
        raise SpecError(f"{origin}: {key}={value!r} is invalid: expected {expected}")

    optional, tp = _is_optional(tp)
    if value is None:
        return None if optional else fail(_type_name(tp))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, origin)
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            fail(f"a list of {_type_name(item)}")
        return tuple(convert(item, v, f"{key}[{i}]", origin) for i, v in enumerate(value))
    if tp is bool:
        return value if isinstance(value, bool) else fail("true or false")
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            fail("an integer")
        return value if abs(value) <= MAX_INT else fail(f"an integer of at most {MAX_INT}")
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            fail("a number")
        # nan fails the comparison too; huge ints are compared before any float conversion
        return float(value) if abs(value) <= MAX_INT else fail(f"a finite number of magnitude at most {MAX_INT}")
    if tp is str:
        return value if isinstance(value, str) else fail("a string")
    raise TypeError(f"unsupported spec field type {tp!r} at {key}")


def build(cls: type, data: Any, key: str, origin: str, *, shown: tuple[str, ...] = (), **fixed: Any) -> Any:
    """Build dataclass `cls` from a mapping; unknown keys, wrong types and bad values are SpecErrors.

    `fixed` supplies fields computed by the caller (e.g. already-expanded sub-specs); `shown`
    names the raw keys the caller consumed for them, for the list of valid keys.
    """
    prefix = f"{key}." if key else ""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: {key or 'the spec'} must be a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields) - set(fixed))
    if unknown:
        valid = sorted((set(fields) - set(fixed)) | set(shown))
        raise SpecError(f"{origin}: unknown key {prefix}{unknown[0]}; valid keys: {', '.join(valid)}")
    hints = typing.get_type_hints(cls)
    kwargs = dict(fixed)
    for name, value in data.items():
        if name in fixed:
            continue
        value = convert(hints[name], value, prefix + name, origin)
        if violates(fields[name], value):
            raise SpecError(f"{origin}: {prefix}{name}={value!r} is invalid: expected {allowed(fields[name])}")
        kwargs[name] = value
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SpecError(f"{origin}: missing key {prefix}{missing[0]}; add it to the spec")
    try:
        return cls(**kwargs)
    except ValueError as e:  # cross-field checks in __post_init__
        raise SpecError(f"{origin}: {key or 'spec'}: {e}") from None


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain YAML/JSON-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def from_plain(tp: Any, value: Any) -> Any:
    """The inverse of `to_plain` for type `tp` (a dataclass, tuple[X, ...], X | None, dict or a plain type),
    by the dataclasses' own fields and type hints: how a trial's config becomes its dataclass again."""
    if value is None:
        return None
    tp = _is_optional(tp)[1]
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{f.name: from_plain(hints[f.name], value[f.name]) for f in dataclasses.fields(tp)
                     if f.init and f.name in value})
    if tp is tuple or typing.get_origin(tp) is tuple:
        item = (typing.get_args(tp) or (Any,))[0]
        return tuple(from_plain(item, v) for v in value)
    if tp is dict or typing.get_origin(tp) is dict:
        return dict(value)
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, for MLflow params."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def digest(data: Any) -> str:
    """A short stable hash of JSON-able data: part of trial keys."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def grid_label(config: Any, varying: tuple[str, ...]) -> str:
    """The grid point of `config` in a run name, e.g. 'epochs-3_lr-0.01' ('' off a grid)."""
    return "_".join(f"{k}-{getattr(config, k)}" for k in varying)
