"""`taskdisc` command line: sweep, results, ui, validate.

Bad input (spec, override, path) prints one line naming the problem and the fix, and exits
with code 2 before anything is started or written.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from orchestrator.specs.io import SpecError

EXIT_BAD_INPUT = 2
TOP = 10  # top tasks listed after a sweep and by `results`
MAX_TRIALS = 100_000  # a spec above this is more often a typo than a plan: --max-trials says it is a plan


def load_any(path, overrides, data: dict | None = None):
    """The spec at `path` (its YAML `data` when already read), of the kind its `kind:` names."""
    from orchestrator.kinds import load_spec
    from orchestrator.specs.io import read_yaml
    data = read_yaml(path) if data is None else data
    if is_cluster(data):
        raise SpecError(f"{path} is a Ray cluster config, not a spec: start it with `ray up {path}`, "
                        f"check it with `taskdisc validate {path}`")
    return load_spec(path, overrides, data)


def prepare(path, overrides, max_trials: int, check_inputs: bool = True, data: dict | None = None):
    """The spec at `path`, with everything checkable checked before anything runs or is written:
    its fields (loading), its size, and (`check_inputs`) its dataset and every input file. A sweep
    leaves the last to `launch`, which checks each sweep it runs, follow-ups included."""
    spec = load_any(path, overrides, data)
    count = spec.trial_count()
    if count > max_trials:
        raise SpecError(f"{path}: {count:,} trials is above the limit of {max_trials:,}; if that is the plan, "
                        f"pass --max-trials {count}, else narrow the task indices, seeds or grid")
    if check_inputs:
        from orchestrator.specs.preflight import check_spec
        check_spec(spec, str(path))
    return spec


def is_cluster(data: dict) -> bool:
    return "provider" in data and "cluster_name" in data


def _sweep(args) -> int:
    if args.resume and args.spec:
        raise SpecError(f"sweep: give a spec file ({args.spec}) or --resume {args.resume}, not both")
    path = Path(args.resume) / "spec.yaml" if args.resume else args.spec
    if path is None:
        raise SpecError("sweep needs a spec file, or --resume SWEEP_DIR")
    spec = prepare(path, args.set, args.max_trials, check_inputs=False)
    if not (args.address or os.environ.get("RAY_ADDRESS")):
        # Ray reads this when imported: a machine-local Ray then binds to loopback only.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from orchestrator import faults
    from orchestrator.kinds import kind_of
    from orchestrator.launch import run_sweep
    log = faults.log_path(Path(spec.sweep_dir))
    try:
        with faults.signals_stop(), faults.ray_logs_to(log, shutdown_on_fault=True):
            swept = run_sweep(spec, address=args.address, origin=str(path))
    except SpecError:
        raise
    except (Exception, faults.Stopped) as e:  # one fault path: three lines, the traceback in the sweep's log
        return faults.report(e, args.argv)
    unfinished = None
    for sweep, rows in swept:
        kind = kind_of(sweep)
        if kind.made:  # trials that export files for the follow-ups: say what they made and where
            print(f"{len(rows)}/{sweep.trial_count()} {kind.made.format(dir=sweep.sweep_dir)}")
        else:
            print(kind.summary(rows, TOP) + fidelity_report(Path(sweep.sweep_dir)))
            if rows:
                print(f"results: {sweep.sweep_dir}; MLflow: {sweep.tracking.uri} "
                      f"(experiment {sweep.experiment!r}; `taskdisc ui` prints its address)")
        if len(rows) < sweep.trial_count() and unfinished is None:
            unfinished = (sweep, len(rows))
    if unfinished:
        sweep, recorded = unfinished
        faults.report_unfinished(sweep, recorded, args.argv)
        return 1
    return 0


def _results(args) -> int:
    from orchestrator.tracking.record import Record
    target = Path(args.target)
    if target.is_file():
        target = Path(load_any(target, args.set).sweep_dir)
    if not (target / "record").is_dir():
        raise SpecError(f"{target}: no sweep record here; pass a sweep folder (runs/<name>) or its spec file")
    kind, current = saved_sweep(target)
    record = Record(target)
    rows = record.rows()
    if record.set_aside:
        print(f"({len(record.set_aside)} unreadable record files were moved to {record.aside_dir}; "
              "their trials run again on the next sweep)")
    if current is not None:  # rows of earlier runs of the folder under another spec or code version
        shown = [r for r in rows if r["key"] in current]
        if len(shown) < len(rows):
            print(f"({len(rows) - len(shown)} recorded trials of an earlier spec or version of this sweep are "
                  "not shown)")
        rows = shown
    print(kind.summary(rows, args.top, args.compare) + fidelity_report(target))
    return 0


def fidelity_report(sweep_dir: Path) -> str:
    """A fidelity study's report (written when its sweep finished), or ''."""
    path = sweep_dir / "fidelity.txt"
    return f"\nfidelity against the reference protocol ({path}):\n{path.read_text().rstrip()}" if path.is_file() else ""


def saved_sweep(sweep_dir: Path) -> tuple:
    """(kind, keys of its trials) of the spec saved in `sweep_dir`. Where this version cannot load it
    (a sweep recorded by an older one), the kind its `kind:` names (else the first registered: agreement
    scores) and None: every recorded trial is shown."""
    from orchestrator.kinds import KIND_KEY, kind_of, kinds
    from orchestrator.specs.io import read_yaml
    try:
        spec = load_any(sweep_dir / "spec.yaml", ())
        return kind_of(spec), {t.key for t in spec.iter_trials()}
    except SpecError as e:
        print(f"({e}: showing every recorded trial)")
    try:
        named = read_yaml(sweep_dir / "spec.yaml").get(KIND_KEY)
    except SpecError:
        named = None
    return kinds().get(named, next(iter(kinds().values()))), None


def saved_spec(sweep_dir: Path):
    """The spec saved in `sweep_dir` by the sweep that ran there."""
    try:
        return load_any(sweep_dir / "spec.yaml", ())
    except SpecError as e:
        raise SpecError(f"{sweep_dir}: its saved spec.yaml cannot be read by this version ({e}); "
                        "rerun the sweep from its spec file to record it anew") from None


def _ui(args) -> int:
    uri = args.uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise SpecError(f"{uri}: no MLflow store here yet; run a sweep first or pass --uri")
    # One worker process: a researcher's own UI, up in half the time of MLflow's default four.
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(args.port), "--workers", "1"]
    from orchestrator.tracking.mlflow_ui import sweep_experiments, view_address
    base = f"http://127.0.0.1:{args.port}"
    print(f"MLflow UI on {base} (store {uri}); Ctrl-C stops it", flush=True)
    for name, experiment_id in sweep_experiments(uri):
        print(f"  {name}: {view_address(base, experiment_id)}", flush=True)
    os.execv(sys.executable, cmd)  # become the server, so that signals reach it directly


def _validate(args) -> int:
    """Check each file; one line per file, exit 2 if any is invalid."""
    failed = 0
    for file in args.file:
        try:
            print(f"{file}: {_check(file, args)}", flush=True)
        except SpecError as e:
            print(f"taskdisc: error: {e}", file=sys.stderr, flush=True)
            failed += 1
    return EXIT_BAD_INPUT if failed else 0


def _check(file, args) -> str:
    from orchestrator.kinds import kind_of
    from orchestrator.specs.io import read_yaml
    data = read_yaml(file)
    if is_cluster(data):
        from orchestrator.specs.cluster import validate_cluster
        validate_cluster(file)
        return "valid Ray cluster config"
    spec = prepare(file, args.set, args.max_trials, data=data)
    kind = kind_of(spec)
    then = f", then {kind.label_follow_ups(spec)}" if kind.follow_ups else ""
    return f"valid spec {spec.name!r} (kind {kind.name}): {plural(spec.trial_count(), 'trial')}{then}"


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _sync(args) -> int:
    """Write the MLflow writes a sweep kept while MLflow did not answer."""
    from orchestrator.launch import spec_params
    from orchestrator.tracking.sweep_log import SweepLog
    folder = Path(args.sweep_dir)
    if not (folder / "spec.yaml").is_file():
        raise SpecError(f"{folder}: no sweep here (no spec.yaml); pass a sweep folder, e.g. runs/quickstart")
    spec = saved_spec(folder)
    log = SweepLog(folder, spec.tracking.uri, spec.experiment, spec.name, spec_params(spec), folder / "spec.yaml")
    waiting = log.flush()
    if waiting:
        print(f"{folder}: MLflow at {spec.tracking.uri} still does not answer; {waiting} runs' writes wait in "
              f"{log.outbox}")
        return 1
    print(f"{folder}: MLflow at {spec.tracking.uri} holds every recorded run")
    return 0


def _show(args) -> int:
    """A picture of one task: a row of training images per label it gives."""
    from trainables.data import DATASETS
    from trainables.labels import TaskError
    from trainables.tasks import TASK_KINDS
    from orchestrator.results.task_pictures import PER_LABEL, draw_task
    from orchestrator.specs.base import DatasetSpec, SweepBase, resolve_paths
    from orchestrator.specs.preflight import driver_dataset
    if args.kind not in TASK_KINDS:
        raise SpecError(f"unknown task kind {args.kind!r}; choose from {', '.join(sorted(TASK_KINDS))}")
    if args.dataset not in DATASETS:
        raise SpecError(f"unknown dataset {args.dataset!r}; choose from {', '.join(sorted(DATASETS))}")
    if args.source and not Path(args.source).is_file():
        raise SpecError(f"--source {args.source}: no such file; give a task table, class-set file or checkpoint")
    dataset = driver_dataset(resolve_paths(SweepBase(dataset=DatasetSpec(args.dataset, args.root))).dataset, "show")
    try:
        path = draw_task(dataset, args.kind, args.index, Path(args.output), args.source, args.num_classes)
    except (TaskError, ValueError) as e:
        raise SpecError(f"show {args.kind} {args.index}: {e}") from None
    print(f"{path}: task {args.kind}-{args.index}, {PER_LABEL} training images per label")
    return 0


def _fields(args) -> int:
    from trainables.config import describe
    from trainables.protocol import PRESETS, Protocol
    from orchestrator.kinds import KIND_KEY, kinds
    from orchestrator.specs.base import DatasetSpec, Resources, Tracking
    if args.section in (None, KIND_KEY):
        print(f"{KIND_KEY} = (required): what the spec runs, one of")
        print("\n".join(f"  {k.name}: {k.doc}" for k in kinds().values()))
    sections = {"dataset": DatasetSpec, "resources": Resources, "tracking": Tracking}
    for kind in kinds().values():
        sections.update(kind.sections)
    if args.section not in (None, KIND_KEY) and args.section not in sections:
        raise SpecError(f"fields {args.section}: no such section; choose from {KIND_KEY}, {', '.join(sections)}")
    for title, cls in sections.items():
        if args.section in (None, title):
            print(f"{title}:")
            print("\n".join(f"  {line}" for line in describe(cls)))
            if cls is Protocol:
                print(f"  preset = (none): start from a named protocol, one of {', '.join(PRESETS)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="taskdisc", description="Agreement scores and task discovery at scale.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="run every trial of a spec not yet recorded (Ray Tune + MLflow)")
    s.add_argument("spec", nargs="?", help="YAML spec, e.g. specs/quickstart.yaml")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. protocol.epochs=3")
    s.add_argument("--resume", metavar="SWEEP_DIR", help="resume the sweep in this folder from its saved spec")
    s.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    s.add_argument("--max-trials", type=int, default=MAX_TRIALS, metavar="N",
                   help=f"refuse a spec of more than N trials (default {MAX_TRIALS:,})")
    s.set_defaults(func=_sweep)
    r = sub.add_parser("results", help="summarise a sweep's recorded results")
    r.add_argument("target", help="sweep folder (runs/<name>) or its spec file")
    r.add_argument("--top", type=int, default=TOP, help="how many top tasks to list")
    r.add_argument("--compare", nargs=2, metavar=("SET_A", "SET_B"),
                   help="mean AS of task set A minus B, with a 95%% interval (e.g. --compare real random)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec override")
    r.set_defaults(func=_results)
    u = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1")
    u.add_argument("--uri", help="tracking URI (default sqlite:///<cwd>/mlflow.db)")
    u.add_argument("--port", type=int, default=5000)
    u.set_defaults(func=_ui)
    v = sub.add_parser("validate", help="check a spec or cluster.yaml without running anything")
    v.add_argument("file", nargs="+", help="spec files or cluster.yaml, e.g. specs/*.yaml")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec override")
    v.add_argument("--max-trials", type=int, default=MAX_TRIALS, metavar="N",
                   help=f"refuse a spec of more than N trials (default {MAX_TRIALS:,})")
    v.set_defaults(func=_validate)
    y = sub.add_parser("sync", help="write to MLflow what a sweep kept while MLflow did not answer")
    y.add_argument("sweep_dir", help="sweep folder, e.g. runs/quickstart")
    y.set_defaults(func=_sync)
    w = sub.add_parser("show", help="draw a task: a row of training images per label it gives")
    w.add_argument("kind", help="task kind, e.g. real, random, table, discovered, classes")
    w.add_argument("index", type=int, help="task index within the kind (a table's column, a hyperplane)")
    w.add_argument("--source", help="task file for table, discovered (encoder .pt or table) and classes tasks")
    w.add_argument("--num-classes", type=int, default=2, help="classes of a random or table task")
    w.add_argument("--dataset", default="cifar10", help="dataset registry name")
    w.add_argument("--root", help="dataset path (default: $TASKDISC_CIFAR10 for cifar10)")
    w.add_argument("-o", "--output", default="task.png", help="picture to write (PNG)")
    w.set_defaults(func=_show)
    f = sub.add_parser("fields", help="every spec field with its default, units and allowed values")
    f.add_argument("section", nargs="?", help="only this section, e.g. protocol or discovery")
    f.set_defaults(func=_fields)
    return p


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"taskdisc: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = one_line_warning  # a user reads what to check, not where in our code
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv  # the command as given: what a fault tells the user to run again
    try:
        return args.func(args)
    except SpecError as e:
        print(f"taskdisc: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `taskdisc results ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
