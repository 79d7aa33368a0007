"""Validation of a `ray up` cluster config with Ray's own schema."""
from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.specs.io import SpecError, read_yaml


def validate_cluster(path: str | Path) -> dict:
    """Fill Ray's defaults (prepare_config) and check the result against Ray's schema."""
    from ray.autoscaler._private.util import prepare_config, validate_config
    logging.getLogger("ray.autoscaler").setLevel(logging.WARNING)  # prepare_config narrates its defaults
    config = read_yaml(path)
    try:
        config = prepare_config(config)
        validate_config(config)
    except Exception as e:  # jsonschema.ValidationError or ValueError, depending on what is wrong
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"{path}: not a valid Ray cluster config ({first}); see "
                        "https://docs.ray.io/en/latest/cluster/vms/references/ray-cluster-configuration.html") from None
    return config
