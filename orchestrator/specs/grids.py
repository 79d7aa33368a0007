"""Grids in specs: every list of a mapping is an axis, and a protocol grid may start from a preset."""
from __future__ import annotations

import itertools
import json
from typing import Any

from trainables.config import ConfigError
from trainables.protocol import PRESETS, Protocol

from orchestrator.specs.io import SpecError, build


def grid(raw: dict) -> list[dict]:
    """{'a': [1, 2], 'b': 3} -> [{'a': 1, 'b': 3}, {'a': 2, 'b': 3}]: every list is a grid axis."""
    axes = [v if isinstance(v, list) and v else [v] for v in raw.values()]
    return [dict(zip(raw, point)) for point in itertools.product(*axes)]


def grid_of(points: list[dict]) -> dict:
    """The inverse of `grid` for a full grid: each key's distinct values (a list when several, and when
    its one value is itself a list, which `grid` would take for an axis)."""
    out = {}
    for k in points[0]:
        values = list({json.dumps(p[k], sort_keys=True): p[k] for p in points}.values())
        out[k] = values if len(values) > 1 or isinstance(values[0], list) else values[0]
    return out


def protocol_grid(raw: Any, origin: str) -> tuple[Protocol, ...]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: protocol must be a mapping of protocol fields to values")
    if "preset" in raw:
        raw = dict(raw)
        name = raw.pop("preset")
        if name not in PRESETS:
            raise SpecError(f"{origin}: protocol.preset={name!r} is unknown; presets: {', '.join(PRESETS)}")
        raw = {**PRESETS[name], **raw}
    return tuple(build(Protocol, point, "protocol", origin) for point in grid(raw))


def on_device(protocols: tuple[Protocol, ...], device: str, names: tuple[str, ...] = ()) -> tuple[Protocol, ...]:
    """The protocol points as they run on `device`, precision auto resolved, before any trial key is made
    (the saved spec says which precision ran); ConfigError when two points become one there."""
    out = tuple(p.on(device) for p in protocols)
    for i, p in enumerate(out):
        if p in out[:i]:
            j = out.index(p)
            a, b = (names[j], names[i]) if names and names[i] else (f"#{j + 1}", f"#{i + 1}")
            raise ConfigError(f"protocol points {a} and {b} are the same on {device} (precision auto is "
                              f"{p.precision} there): drop one, or give each its precision")
    return out
