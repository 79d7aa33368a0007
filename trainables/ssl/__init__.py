"""Self-supervised pretraining of backbones for regulated task discovery (SimCLR, via lightly)."""
from .config import SimCLRConfig
from .simclr import SimCLRRun, backbone_state, pretrain

__all__ = ["SimCLRConfig", "SimCLRRun", "backbone_state", "pretrain"]
