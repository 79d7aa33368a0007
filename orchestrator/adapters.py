"""Registry of trial kinds the Tune layer can run, by name."""
from __future__ import annotations

from .agreement_trial import AgreementAdapter
from .discovery_trial import DiscoveryAdapter
from .randnet_trial import RandnetAdapter
from .split_trial import SplitAdapter
from .trial_api import Adapter

ADAPTERS: dict[str, Adapter] = {
    "agreement": AgreementAdapter(),
    "discovery": DiscoveryAdapter(),
    "split": SplitAdapter(),
    "randnet": RandnetAdapter(),
}
