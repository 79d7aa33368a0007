"""Registry of trial kinds the Tune layer can run, by name."""
from __future__ import annotations

from orchestrator.trials.agreement import AgreementAdapter
from orchestrator.trials.discovery import DiscoveryAdapter
from orchestrator.trials.pretrain import PretrainAdapter
from orchestrator.trials.randnet import RandnetAdapter
from orchestrator.trials.splits import SplitAdapter
from orchestrator.trials.api import Adapter

ADAPTERS: dict[str, Adapter] = {
    "agreement": AgreementAdapter(),
    "discovery": DiscoveryAdapter(),
    "split": SplitAdapter(),
    "randnet": RandnetAdapter(),
    "pretrain": PretrainAdapter(),
}
