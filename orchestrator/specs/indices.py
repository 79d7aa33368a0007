"""Index lists of a spec ('0-125', '0-3,7', 5, [0, 5, 7]): task indices, columns and seeds."""
from __future__ import annotations

import re
from typing import Any

from orchestrator.specs.io import MAX_INT, SpecError

# Indices of one task set are held in memory; more than this is a typo or a job for several sets.
MAX_SET_INDICES = 1_000_000


def parse_indices(value: Any, key: str, origin: str) -> tuple[int, ...]:
    """'0-125', '0-3,7', 5 or [0, 5, 7] -> a tuple of distinct non-negative indices (also seeds)."""
    items = value if isinstance(value, list) else [value]
    spans: list[tuple[int, int]] = []
    for item in items:
        for part in (str(item).split(",") if not isinstance(item, bool) else ["bad"]):
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
                raise SpecError(f"{origin}: {key}={value!r} is invalid: expected indices like 0-125, '0-3,7' "
                                "or [0, 5]")
            spans.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    if not spans:
        raise SpecError(f"{origin}: {key} lists no indices; give at least one, e.g. 0-3")
    top = max(hi for _, hi in spans)
    if top > MAX_INT:
        raise SpecError(f"{origin}: {key} includes {top}: indices and seeds are at most {MAX_INT}")
    count = sum(hi - lo + 1 for lo, hi in spans)  # before any list is built: '0-10**20' is one line of text
    if count > MAX_SET_INDICES:
        raise SpecError(f"{origin}: {key}={value!r} lists {count:,} indices; at most {MAX_SET_INDICES:,} per set "
                        "(split it into several sets)")
    out = [i for lo, hi in spans for i in range(lo, hi + 1)]
    if len(set(out)) != len(out):
        raise SpecError(f"{origin}: {key}={value!r} lists an index twice; list each once")
    return tuple(out)


def parse_seeds(data: dict, key: str, origin: str) -> None:
    """Seeds take the forms indices do ('0-99', [0, 3]): parse `data['seeds']` in place."""
    if "seeds" in data:
        data["seeds"] = list(parse_indices(data["seeds"], key, origin))
