"""A fidelity study's report: the table as text and CSV, the figure, and the parent run's metrics."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from orchestrator.results.fidelity import CEILING, CHEAP, frontier
from orchestrator.results.plots import _save, plt


def _f(x, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def report(table: list[dict]) -> str:
    """The table, cheapest first, with the ceiling's line and the frontier's."""
    groups = sorted(k.removeprefix("spearman_") for k in table[0] if k.startswith("spearman_") and k != "spearman_means")
    head = (f"{'candidate':<26}{'cost':>6}{'spearman':>9}" + "".join(f"{g[:8]:>9}" for g in groups)
            + f"{'means':>7}{'mean|d|':>9}{'max|d|':>8}{'real-rand':>10}{'kept':>6}{'as good':>8}")
    lines = [head]
    for r in sorted(table, key=lambda r: (r["cost"], r["candidate"] == CEILING)):
        good = "-" if r["as_good"] is None else ("yes" if r["as_good"] else "no")
        lines.append(f"{r['candidate']:<26}{r['cost']:>6.2f}{_f(r['spearman']):>9}"
                     + "".join(f"{_f(r[f'spearman_{g}']):>9}" for g in groups)
                     + f"{_f(r['spearman_means']):>7}{_f(r['mean_abs_diff'], 4):>9}{_f(r['max_abs_diff'], 4):>8}"
                     f"{_f(r['separation'], 4):>10}{_f(r['separation_kept'], 2):>6}{good:>8}")
    top = next((r for r in table if r["candidate"] == CEILING), None)
    if top:
        lines.append(f"ceiling: the reference's seeds against the mean of its other seeds, Spearman "
                     f"{top['spearman']:.3f}, 95% interval [{_f(top['ci95_low'])}, {_f(top['ci95_high'])}] "
                     f"({top['tasks']} tasks, {top['seeds']} seeds); seed to seed {_f(top['seed_to_seed'])} "
                     f"[{_f(top['seed_to_seed_low'])}, {_f(top['seed_to_seed_high'])}]. spearman: each seed of a "
                     "candidate against the same mean; as good: at least the ceiling's low end; "
                     "means: the candidate's mean over seeds against the reference's; |d| between those means")
    lines.append(frontier(table))
    return "\n".join(lines)


def metrics(table: list[dict]) -> dict[str, float]:
    """fidelity/<candidate>/<figure> for the parent run; the ceiling as fidelity/ceiling/..."""
    out = {}
    for r in table:
        name = "ceiling" if r["candidate"] == CEILING else r["candidate"].replace(" (read)", "")
        keys = ["spearman", "spearman_means", "mean_abs_diff", "max_abs_diff", "separation_kept", "cost"]
        keys += [k for k in r if k.startswith("spearman_") and k != "spearman_means"]
        keys += [k for k in ("ci95_low", "ci95_high", "seed_to_seed") if k in r]
        out.update({f"fidelity/{name}/{k}": float(r[k]) for k in keys})
        if r["as_good"] is not None and r["candidate"] != CEILING:
            out[f"fidelity/{name}/as_good"] = float(r["as_good"])
    return out


def write_fidelity(table: list[dict], reference_rows: list[dict], out_dir: Path) -> list[Path]:
    """fidelity.csv, fidelity.txt and fidelity.png (AS against epoch per task; the frontier)."""
    csv_path, txt_path = out_dir / "fidelity.csv", out_dir / "fidelity.txt"
    columns = list(dict.fromkeys(k for r in table for k in r))
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, columns, restval="")
        w.writeheader()
        w.writerows(table)
    txt_path.write_text(report(table) + "\n")
    return [csv_path, txt_path, fidelity_figure(table, reference_rows, out_dir / "fidelity.png")]


def fidelity_figure(table: list[dict], reference_rows: list[dict], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    kinds = sorted({r["kind"] for r in reference_rows})
    for r in reference_rows:
        curve = r["agreement_by_epoch"]
        left.plot(range(1, len(curve) + 1), curve, color=f"C{kinds.index(r['kind'])}", alpha=0.5, lw=1)
    for i, kind in enumerate(kinds):
        left.plot([], [], color=f"C{i}", label=kind)
    left.set(xlabel="epoch", ylabel="held-out agreement", title="reference: AS against epoch, per task")
    left.legend(fontsize=7)
    top = next((r for r in table if r["candidate"] == CEILING), None)
    for r in table:
        if r is top:
            continue
        right.scatter(r["cost"], r["spearman"], color="C3" if "(read)" in r["candidate"] else "C0")
        right.annotate(r["candidate"], (r["cost"], r["spearman"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if top and not math.isnan(top["ci95_low"]):
        right.axhspan(top["ci95_low"], top["ci95_high"], color="gray", alpha=0.2, label="ceiling: 95% interval")
        right.axhline(top["spearman"], color="gray", lw=1)
        right.legend(fontsize=7, loc="lower right")
    right.axvline(1 / CHEAP, color="gray", ls=":", lw=1)
    right.set(xlabel="cost relative to the reference", ylabel="Spearman with the reference's mean",
              title="fidelity against cost")
    return _save(fig, path)
