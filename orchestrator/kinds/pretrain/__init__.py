"""The pretrain kind: SimCLR backbones, then (`discovery:`) SSL-regulated discovery on each of them."""
import functools

from trainables.ssl import SimCLRConfig

from orchestrator.kinds import SweepKind
from orchestrator.kinds.pretrain.spec import PretrainSpec, PretrainTrial, parse_pretrain_spec, pretrain_spec_data
from orchestrator.results.exports import finish_exports, summarize_exports


def _adapter():
    from orchestrator.kinds.pretrain.trial import PretrainAdapter
    return PretrainAdapter()


def example(root: str) -> dict:
    return {"name": "example-pretrain", "dataset": {"name": "imagefolder", "root": root},
            "pretrain": {"arch": "mlp", "width": 0.125, "epochs": 1, "batch_size": 32, "train_subset": 128,
                         "holdout": 60, "knn_images": 100, "knn_test_images": 50, "proj_hidden_dim": 32,
                         "proj_out_dim": 16},
            "resources": {"cpus": 1}}


KIND = SweepKind(
    name="pretrain", doc="pretrain backbones (SimCLR), then discover tasks on each",
    spec=PretrainSpec, trial=PretrainTrial, parse=parse_pretrain_spec, dump=pretrain_spec_data, adapter=_adapter,
    finish=functools.partial(finish_exports, kind="pretrain"), summarize=summarize_exports, example=example,
    sections={"pretrain spec": PretrainSpec, "pretrain": SimCLRConfig},
    made="backbones pretrained; state dicts under {dir}/pretrained",
    follow_ups=(("discover", "discovery on each backbone"),))
