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


KIND = SweepKind(
    name="discovery", doc="discover tasks: train task encoders, export their task tables",
    spec=DiscoverySpec, trial=DiscoveryTrial, parse=parse_discovery_spec, dump=discovery_spec_data,
    adapter=_adapter, finish=functools.partial(finish_exports, kind="discovery"), summarize=summarize_exports,
    sections={"discovery spec": DiscoverySpec, "discovery": DiscoveryConfig, "score": ScoreSpec,
              "discovery search": DiscoverySearch},
    made="encoders trained; task tables under {dir}/discovered",
    follow_ups=(("score", "the score sweep"), ("splits", "the splits sweep")))
