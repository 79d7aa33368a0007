"""The randnet kind: score every image with an untrained network and export the split it gives
(the paper's ImageNet adversarial splits); `splits:` then trains on them."""
import functools

from trainables.splits import RandnetConfig

from orchestrator.kinds import SweepKind
from orchestrator.kinds.randnet.spec import RandnetSpec, RandnetTrial, parse_randnet_spec, randnet_spec_data
from orchestrator.results.exports import finish_exports, summarize_exports


def _adapter():
    from orchestrator.kinds.randnet.trial import RandnetAdapter
    return RandnetAdapter()


def example(root: str) -> dict:
    return {"name": "example-randnet", "dataset": {"name": "imagefolder", "root": root},
            "randnet": {"arch": "resnet18", "width": 0.125, "image_size": None, "batch_size": 64,
                        "batches_per_step": 2, "decode_threads": 1},
            "resources": {"cpus": 1}}


KIND = SweepKind(
    name="randnet", doc="split images by an untrained network's logit and export the splits",
    spec=RandnetSpec, trial=RandnetTrial, parse=parse_randnet_spec, dump=randnet_spec_data, adapter=_adapter,
    finish=functools.partial(finish_exports, kind="randnet"), summarize=summarize_exports, example=example,
    sections={"randnet spec": RandnetSpec, "randnet": RandnetConfig},
    made="images scored; splits under {dir}/randnet", follow_ups=(("splits", "the splits sweep"),))
