"""The GPU check's targets (issue 26) and the verdict lines part 2 of the report ends with.

Per agreement-score evaluation: the training images of one evaluation under the protocol's
defaults (100 epochs of the 45,000 images CIFAR-10 keeps after the 5,000 held out), the
reference loop at its best rate, the engine at a row's steady rate plus that row's first-epoch
overhead (compile, first touch) paid once, as it is by a trial that compiles its own pair.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainables.protocol import Protocol

# arch: (least fraction of the measured bf16 matmul peak or None, least speed-up per AS evaluation)
GOALS = {"resnet18": (0.40, 5.0), "mlp": (None, 20.0)}


@dataclass(frozen=True)
class EngineRow:
    """One measured engine configuration of one arch."""
    config: str  # e.g. "bf16, channels_last, compile on"
    images_per_s: float
    overhead_s: float
    tflops: float


def evaluation_images(n_train: int) -> int:
    """Training images one AS evaluation trains on: the protocol's epochs over what the holdout leaves."""
    p = Protocol()
    return p.epochs * (n_train - p.holdout)


def verdict(value: float, goal: float) -> str:
    return "**met**" if value >= goal else "**not met**"


def goal_lines(arch: str, reference: float | None, rows: list[EngineRow], peak_tflops: float,
               n_train: int) -> list[str]:
    """Markdown bullets: the arch's best engine row against each goal of GOALS[arch]."""
    if arch not in GOALS or not rows:
        return [f"- {arch}: no engine row finished, no verdict"]
    least_peak, least_speedup = GOALS[arch]
    lines = []
    if least_peak is not None:
        top = max(rows, key=lambda r: r.tflops)
        lines.append(f"- {arch} pair at {top.tflops / peak_tflops:.1%} of the bf16 peak measured in this run "
                     f"({top.tflops:.3g} of {peak_tflops:.3g} TFLOP/s; {top.config}): goal >= {least_peak:.0%}: "
                     f"{verdict(top.tflops / peak_tflops, least_peak)}")
    if reference is None:
        lines.append(f"- {arch}: the reference loop failed, no speed-up verdict")
        return lines
    work = evaluation_images(n_train)
    ref_s = work / reference

    def per_eval(r: EngineRow) -> float:
        return ref_s / (r.overhead_s + work / r.images_per_s)

    best = max(rows, key=per_eval)
    lines.append(f"- {arch}: {per_eval(best):.2f}x the reference loop per AS evaluation ({work:,} training "
                 f"images: {ref_s:.0f} s against {ref_s / per_eval(best):.0f} s with {best.overhead_s:.0f} s "
                 f"first-epoch overhead; steady rate {best.images_per_s / reference:.2f}x; {best.config}): "
                 f"goal >= {least_speedup:g}x: {verdict(per_eval(best), least_speedup)}")
    return lines
