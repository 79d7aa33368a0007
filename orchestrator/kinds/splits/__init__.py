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


def example(root: str) -> dict:
    return {"name": "example-splits", "dataset": {"name": "imagefolder", "root": root},
            "protocol": {"arch": "mlp", "width": 0.125, "epochs": 1, "batch_size": 64, "compile": "off"},
            "splits": {"targets": {"kind": "real", "indices": [0]}, "rules": {"real": [1]}, "half": 1},
            "resources": {"cpus": 1}}


KIND = SweepKind(
    name="splits", doc="train on the splits of target tasks and measure their test accuracy",
    spec=SplitSpec, trial=SplitTrial, parse=parse_split_spec, dump=split_spec_data, adapter=_adapter,
    finish=finish_splits, summarize=summarize_splits, example=example,
    sections={"split spec": SplitSpec, "protocol": Protocol, "splits": SplitPlan, "follow-up splits": SplitFollowUp})
