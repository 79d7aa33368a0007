"""A fidelity study in a sweep spec: the `protocol:` point is the reference, `fidelity.candidates`
name cheaper protocols (the fields that differ from it), scored on the same tasks and seeds, and
`fidelity.read_epochs` are free candidates read off the reference's per-epoch agreement."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from trainables.config import param
from trainables.protocol import Protocol

from orchestrator.specs.io import SpecError, build

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
KEYS = ("candidates", "read_epochs")


@dataclass(frozen=True)
class Fidelity:
    candidates: tuple[str, ...] = param((), "cheaper protocols: in YAML, name -> the protocol fields that differ "
                                            "from the reference `protocol:` (here their names, in order)")
    read_epochs: tuple[int, ...] = param((), "epochs at which the reference's per-epoch agreement is read as a "
                                             "free candidate, e.g. [1, 2, 4]")

    @property
    def on(self) -> bool:
        return bool(self.candidates or self.read_epochs)


def parse_fidelity(raw: Any, protocols: tuple[Protocol, ...], origin: str) -> tuple[tuple[Protocol, ...], Fidelity]:
    """(the reference and candidate protocols, the study) from the spec's `fidelity:` mapping."""
    if raw is None:
        return protocols, Fidelity()
    if not isinstance(raw, dict) or set(raw) - set(KEYS):
        bad = sorted(set(raw) - set(KEYS))[0] if isinstance(raw, dict) else None
        raise SpecError(f"{origin}: " + (f"unknown key fidelity.{bad}; valid keys: {', '.join(KEYS)}" if bad else
                                         "fidelity must be a mapping with candidates and read_epochs"))
    if len(protocols) > 1:
        raise SpecError(f"{origin}: fidelity compares candidates with one reference protocol; `protocol:` has "
                        f"{len(protocols)} grid points: give it single values")
    reference = protocols[0]
    candidates = raw.get("candidates") or {}
    if not isinstance(candidates, dict):
        raise SpecError(f"{origin}: fidelity.candidates must map names to protocol fields, e.g. bf16: {{precision: bf16}}")
    out = [reference]
    for name, fields in candidates.items():
        key = f"fidelity.candidates.{name}"
        if not isinstance(name, str) or not NAME.match(name) or name == "reference":
            raise SpecError(f"{origin}: {key}: a candidate's name is 1-40 letters, digits, '.', '_' or '-', "
                            "and not 'reference'")
        if not isinstance(fields, dict) or not fields:
            raise SpecError(f"{origin}: {key} must map protocol fields to values, e.g. {{precision: bf16}}")
        protocol = build(Protocol, {**dataclasses.asdict(reference), **fields}, key, origin)
        if protocol in out:
            same = ("reference", *candidates)[out.index(protocol)]
            raise SpecError(f"{origin}: {key} is the same protocol as {same}: change a field")
        out.append(protocol)
    epochs = raw.get("read_epochs") or []
    if not isinstance(epochs, list) or any(type(e) is not int or not 1 <= e < reference.epochs for e in epochs):
        raise SpecError(f"{origin}: fidelity.read_epochs must list epochs from 1 to {reference.epochs - 1} "
                        f"(protocol.epochs={reference.epochs}), e.g. [1, 2, 4]")
    return tuple(out), Fidelity(tuple(candidates), tuple(sorted(set(epochs))))


def point_names(fidelity: Fidelity, count: int) -> tuple[str, ...]:
    """The name of each protocol point: 'reference' and the candidates' ('' each off a study)."""
    return ("reference", *fidelity.candidates) if fidelity.on else ("",) * count


def fidelity_data(protocols: tuple[Protocol, ...], fidelity: Fidelity) -> dict:
    """The study in the YAML shape `parse_fidelity` reads: each candidate's fields that differ."""
    reference = dataclasses.asdict(protocols[0])
    return {"candidates": {name: {k: v for k, v in dataclasses.asdict(p).items() if v != reference[k]}
                           for name, p in zip(fidelity.candidates, protocols[1:])},
            "read_epochs": list(fidelity.read_epochs)}
