"""Self-supervised pretraining of backbones for regulated task discovery (SimCLR, via lightly)."""

import importlib

# Name -> the module that defines it, imported on first use: importing a config (what a spec needs)
# does not import the training code (PyTorch, lightly).
_EXPORTS = {
    "SimCLRConfig": "config",
    "SimCLRRun": "simclr",
    "backbone_state": "simclr",
    "pretrain": "simclr",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
