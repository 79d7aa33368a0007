"""Top-k search over tasks: Tune's ASHA stops trials whose held-out agreement trails the others'
at a rung, so the epochs go to the tasks that may be among the k best."""
from __future__ import annotations

from dataclasses import dataclass

from trainables.config import ConfigError, check, param
from trainables.protocol import Protocol


@dataclass(frozen=True)
class Search:
    top_k: int | None = param(None, "look for the k highest-AS tasks, stopping poor trials early (ASHA on "
                                    "eval/agreement after each epoch); null = every trial runs to the end", ge=1)
    # Defaults from an offline replay of ASHA on the 126 real tasks run to the end (specs/top-k-real.yaml,
    # 8 epochs; python -m orchestrator.results.asha_replay): grace 1, factor 2 found the true top 5 at 2.52x
    # fewer epochs in the sweep's order (grace 2, factor 3: 4 of 5 at 1.96x, as the real run found), but only
    # in 32% of shuffled start orders; grace 2, factor 2 in 90% at 1.82x (README: top-k search).
    grace_epochs: int = param(1, "epochs every trial runs before it can be stopped", ge=1)
    reduction_factor: int = param(2, "at each rung (grace_epochs x factor^n epochs) the best 1/factor go on", ge=2)

    def __post_init__(self):
        check(self)

    def check_protocols(self, protocols: tuple[Protocol, ...]) -> None:
        if self.top_k is None:
            return
        if len(protocols) > 1:
            raise ConfigError(f"search.top_k ranks the tasks of one protocol; the protocol grid has "
                              f"{len(protocols)} points: sweep one point per spec")
        if self.grace_epochs >= protocols[0].epochs:
            raise ConfigError(f"search.grace_epochs={self.grace_epochs} leaves nothing to stop: "
                              f"use fewer than protocol.epochs={protocols[0].epochs}")

    def scheduler_config(self, epochs: int) -> dict | None:
        """Keyword arguments of Tune's ASHAScheduler for trials of `epochs` epochs; None when off."""
        if self.top_k is None:
            return None
        return {"time_attr": "training_iteration", "metric": "eval/agreement", "mode": "max", "max_t": epochs,
                "grace_period": self.grace_epochs, "reduction_factor": self.reduction_factor}
