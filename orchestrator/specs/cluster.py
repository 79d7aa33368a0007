"""Validation of a `ray up` cluster config: Ray's own schema, and Ray's images of the installed Ray.

Through Ray's public autoscaler SDK (`fillout_defaults`) and the JSON schema Ray ships beside it, checked
with `jsonschema` (a dependency of Ray's), plus the node-type rules `ray up` applies on top of the schema.
"""
from __future__ import annotations

import importlib.resources
import json
import logging
import re
from pathlib import Path

from orchestrator.specs.io import SpecError, read_yaml

RAY_IMAGE = re.compile(r"^(?:docker\.io/)?rayproject/(ray|ray-ml):(.+)$")
IMAGE_KEYS = ("image", "head_image", "worker_image")


def validate_cluster(path: str | Path) -> dict:
    """Fill Ray's defaults for the provider and check the result against Ray's schema and node-type rules,
    then check that the Ray images the nodes run have the Ray version installed here (the driver's)."""
    import jsonschema
    from ray.autoscaler.sdk import fillout_defaults
    logging.getLogger("ray.autoscaler").setLevel(logging.WARNING)  # filling defaults narrates them
    config = read_yaml(path)
    check_images(config, path)
    try:
        if not isinstance(config.get("provider"), dict):
            raise ValueError("'provider' is a required mapping (e.g. {type: aws, region: us-west-2})")
        config = fillout_defaults(config)
        jsonschema.validate(config, ray_schema())
        check_node_types(config)
    except Exception as e:  # jsonschema.ValidationError or ValueError, depending on what is wrong
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"{path}: not a valid Ray cluster config ({first}); see "
                        "https://docs.ray.io/en/latest/cluster/vms/references/ray-cluster-configuration.html") from None
    return config


def ray_schema() -> dict:
    """The JSON schema of cluster configs that the installed Ray ships with its autoscaler."""
    return json.loads(importlib.resources.files("ray.autoscaler").joinpath("ray-schema.json").read_text())


def check_node_types(config: dict) -> None:
    """What `ray up` checks beyond the schema: the head's node type is one of the node types, and the
    node types' minimum workers fit within max_workers."""
    types = config.get("available_node_types") or {}
    if types:
        if config.get("head_node_type") not in types:
            raise ValueError(f"head_node_type must be one of available_node_types ({', '.join(types)})")
        least = sum(t.get("min_workers", 0) for t in types.values())
        if least > config.get("max_workers", least):
            raise ValueError(f"max_workers={config['max_workers']} is below the node types' min_workers "
                             f"({least} in all)")


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
