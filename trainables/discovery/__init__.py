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
from .config import DiscoveryConfig
from .encoder import TaskEncoder, build_encoder, calibrate_bn, encoder_labels, orthogonal_hyperplanes
from .export import discovered_task, export_table, load_encoder, save_encoder, table_of_test_images, write_table
from .losses import agreement_loss, uniformity_loss
from .run import DiscoveryResult, DiscoveryRun, discover
from .unroll import InnerPair, MetaBatch, MetaOutput, meta_objective

__all__ = ["DiscoveryConfig", "TaskEncoder", "build_encoder", "calibrate_bn", "encoder_labels",
           "orthogonal_hyperplanes", "discovered_task", "export_table", "load_encoder", "save_encoder",
           "table_of_test_images", "write_table", "agreement_loss", "uniformity_loss", "DiscoveryResult",
           "DiscoveryRun", "discover", "InnerPair", "MetaBatch", "MetaOutput", "meta_objective"]
