"""Task discovery: train a task encoder so that the tasks it defines (fixed hyperplanes through
its embedding) get a high agreement score, by unrolled second-order meta-learning.

| file | holds |
| config.py | DiscoveryConfig |
| encoder.py | the task encoder, hyperplanes, soft and hard labels, BatchNorm calibration |
| losses.py | soft cross-entropy, symmetric agreement loss, uniformity loss |
| unroll.py | the unrolled inner pair and the meta-objective (with optional checkpointing) |
| stats.py | balance and similarity of the tasks on a probe batch |
| quickeval.py | quick agreement scores during discovery |
| run.py | DiscoveryRun (stateful, resumable) and discover() |
| export.py | encoder checkpoints, task tables, the `discovered` task kind |
"""

import importlib

# Name -> the module that defines it, imported on first use: importing a config (what a spec needs)
# does not import the training code (PyTorch, lightly).
_EXPORTS = {
    "DiscoveryConfig": "config",
    "TaskEncoder": "encoder",
    "build_encoder": "encoder",
    "calibrate_bn": "encoder",
    "encoder_labels": "encoder",
    "orthogonal_hyperplanes": "encoder",
    "discovered_task": "export",
    "export_table": "export",
    "load_encoder": "export",
    "save_encoder": "export",
    "table_of_test_images": "export",
    "write_table": "export",
    "agreement_loss": "losses",
    "uniformity_loss": "losses",
    "DiscoveryResult": "run",
    "DiscoveryRun": "run",
    "discover": "run",
    "InnerPair": "unroll",
    "MetaBatch": "unroll",
    "MetaOutput": "unroll",
    "meta_objective": "unroll",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
