"""The splits kind: train on train/test splits of target tasks (adversarial, random-net, random) and
measure the test accuracy each split leaves."""
from trainables.protocol import Protocol

from orchestrator.kinds import SweepKind
from orchestrator.kinds.splits.results import finish_splits, summarize_splits
from orchestrator.kinds.splits.spec import SplitFollowUp, SplitPlan, SplitSpec, SplitTrial, parse_split_spec, \
    split_spec_data


def _adapter():
    from orchestrator.kinds.splits.trial import SplitAdapter
    return SplitAdapter()


KIND = SweepKind(
    name="splits", doc="train on the splits of target tasks and measure their test accuracy",
    spec=SplitSpec, trial=SplitTrial, parse=parse_split_spec, dump=split_spec_data, adapter=_adapter,
    finish=finish_splits, summarize=summarize_splits,
    sections={"split spec": SplitSpec, "protocol": Protocol, "splits": SplitPlan, "follow-up splits": SplitFollowUp})
