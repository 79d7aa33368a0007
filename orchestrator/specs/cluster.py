"""Validation of a `ray up` cluster config: Ray's own schema, and Ray's images of the installed Ray."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from orchestrator.specs.io import SpecError, read_yaml

RAY_IMAGE = re.compile(r"^(?:docker\.io/)?rayproject/(ray|ray-ml):(.+)$")
IMAGE_KEYS = ("image", "head_image", "worker_image")


def validate_cluster(path: str | Path) -> dict:
    """Fill Ray's defaults (prepare_config) and check the result against Ray's schema, then check
    that the Ray images the nodes run have the Ray version installed here (the driver's)."""
    from ray.autoscaler._private.util import prepare_config, validate_config
    logging.getLogger("ray.autoscaler").setLevel(logging.WARNING)  # prepare_config narrates its defaults
    config = read_yaml(path)
    check_images(config, path)
    try:
        config = prepare_config(config)
        validate_config(config)
    except Exception as e:  # jsonschema.ValidationError or ValueError, depending on what is wrong
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"{path}: not a valid Ray cluster config ({first}); see "
                        "https://docs.ray.io/en/latest/cluster/vms/references/ray-cluster-configuration.html") from None
    return config


def check_images(config: dict, path: str | Path) -> None:
    """SpecError for a `rayproject/ray` image whose tag is not the installed Ray version (a driver and
    nodes of different Ray versions cannot talk), and for the discontinued `rayproject/ray-ml`.
    Other images (one built on Ray's) are the user's to keep in step."""
    import ray
    places = [("docker", config.get("docker") or {})]
    places += [(f"available_node_types.{name}.docker", t.get("docker") or {})
               for name, t in (config.get("available_node_types") or {}).items()]
    for where, docker in places:
        for key in IMAGE_KEYS:
            image = docker.get(key)
            found = RAY_IMAGE.match(str(image)) if image else None
            if not found:
                continue
            repo, tag = found.groups()
            version = re.match(r"^\d+\.\d+\.\d+", tag)
            suffix = tag[version.end():] if version else tag[len(tag.split("-")[0]):]  # -pyXY, -gpu: kept
            fix = f"rayproject/ray:{ray.__version__}{suffix}"
            if repo == "ray-ml":
                raise SpecError(f"{path}: {where}.{key}: {image}: rayproject/ray-ml images are discontinued; "
                                f"use {fix} (the project is installed on top by setup_commands)")
            if version is None or version.group() != ray.__version__:
                what = f"runs Ray {version.group()}" if version else "does not name a Ray version"
                raise SpecError(f"{path}: {where}.{key}: {image} {what}, but Ray {ray.__version__} is installed "
                                f"here: use {fix}")
