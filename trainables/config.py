"""Declarative fields for frozen config dataclasses: a one-line doc, units and bounds.

`param` attaches the metadata; `check` validates an instance against it. Dataclasses call
`check(self)` from `__post_init__`, so a bad value fails where it is made, naming the field.
The orchestrator's YAML loader reads the same metadata, so rules live in one place.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence


class ConfigError(ValueError):
    """A config value is invalid; the message names the field and what is allowed."""


def param(default: Any, doc: str, *, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None,
          choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field with a doc line (with units) and optional bounds or choices."""
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in frozen configs")
    return dataclasses.field(default=default, metadata=meta)


def allowed(f: dataclasses.Field) -> str:
    """Human text for what a field accepts, e.g. 'a number >= 0 and <= 1'."""
    m = f.metadata
    if m.get("choices") is not None:
        return "one of " + ", ".join(repr(c) for c in m["choices"])
    parts = [f"{op} {m[key]}" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
             if m.get(key) is not None]
    return "a value " + " and ".join(parts) if parts else "any value of its type"


def violates(f: dataclasses.Field, value: Any) -> bool:
    """Whether `value` breaks the field's bounds or choices (None always passes: it means 'off')."""
    m = f.metadata
    if value is None:
        return False
    if m.get("choices") is not None:
        return value not in m["choices"]
    return ((m.get("ge") is not None and value < m["ge"]) or (m.get("gt") is not None and value <= m["gt"])
            or (m.get("le") is not None and value > m["le"]) or (m.get("lt") is not None and value >= m["lt"]))


def check(obj: Any) -> None:
    """Raise ConfigError for the first field of `obj` whose value is out of range."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if violates(f, value):
            raise ConfigError(f"{type(obj).__name__}.{f.name}={value!r} is invalid: expected {allowed(f)}")


def describe(cls: type) -> list[str]:
    """One line per field: name, default, doc and what it accepts, for help texts."""
    lines = []
    for f in dataclasses.fields(cls):
        default = "(required)" if f.default is dataclasses.MISSING else repr(f.default)
        accepts = allowed(f) if f.metadata.get("choices") is not None or any(
            f.metadata.get(k) is not None for k in ("ge", "gt", "le", "lt")) else ""
        lines.append(f"{f.name} = {default}: {f.metadata.get('doc', '')}" + (f" [{accepts}]" if accepts else ""))
    return lines
