"""The discovery kind: train task encoders by meta-gradient (one trial per grid point or PBT member),
export their tasks, then score them (`score:`) and build splits from them (`splits:`)."""
import functools

from trainables.discovery import DiscoveryConfig

from orchestrator.kinds import SweepKind
from orchestrator.kinds.discovery.search import DiscoverySearch
from orchestrator.kinds.discovery.spec import DiscoverySpec, DiscoveryTrial, ScoreSpec, discovery_spec_data, \
    parse_discovery_spec
from orchestrator.results.exports import finish_exports, summarize_exports


def _adapter():
    from orchestrator.kinds.discovery.trial import DiscoveryAdapter
    return DiscoveryAdapter()


def example(root: str) -> dict:
    return {"name": "example-discovery", "dataset": {"name": "imagefolder", "root": root},
            "discovery": {"arch": "mlp", "width": 0.125, "h_dim": 4, "n_linear_tasks": 2, "nsteps": 2,
                          "inner_batch_size": 32, "outer_batch_size": 32, "meta_steps": 2, "holdout": 60,
                          "outer_pool": 60, "probe_size": 64, "calibration_size": 128},
            "steps_per_report": 2, "resources": {"cpus": 1}}


KIND = SweepKind(
    name="discovery", doc="discover tasks: train task encoders, export their task tables",
    spec=DiscoverySpec, trial=DiscoveryTrial, parse=parse_discovery_spec, dump=discovery_spec_data,
    adapter=_adapter, finish=functools.partial(finish_exports, kind="discovery"), summarize=summarize_exports,
    example=example,
    sections={"discovery spec": DiscoverySpec, "discovery": DiscoveryConfig, "score": ScoreSpec,
              "discovery search": DiscoverySearch},
    made="encoders trained; task tables under {dir}/discovered",
    follow_ups=(("score", "the score sweep"), ("splits", "the splits sweep")))
