"""The cluster files as files: cluster.yaml's images, authentication and head; deploy/rayjob.yaml
against the fields KubeRay documents for ray.io/v1 (KubeRay 1.6 API reference); deploy/Dockerfile's
base image. Their runs are tests/test_autoscaler.py and tests/test_slurm.py."""
from __future__ import annotations

import re

import pytest
import ray
import yaml

from orchestrator.cli import main
from sweep_helpers import REPO

RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy", "entrypoint",
               "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId", "managedBy", "metadata",
               "rayClusterSpec", "runtimeEnvYAML", "shutdownAfterJobFinishes", "submissionMode",
               "submitterConfig", "submitterPodTemplate", "suspend", "ttlSecondsAfterFinished"}
RAYCLUSTER_SPEC = {"authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
                   "headGroupSpec", "headServiceAnnotations", "managedBy", "rayVersion", "suspend",
                   "upgradeStrategy", "workerGroupSpecs"}
HEAD_GROUP = {"enableIngress", "headService", "rayStartParams", "serviceType", "template"}
WORKER_GROUP = {"groupName", "idleTimeoutSeconds", "maxReplicas", "minReplicas", "numOfHosts", "rayStartParams",
                "replicas", "scaleStrategy", "suspend", "template"}
AUTOSCALER = {"env", "envFrom", "idleTimeoutSeconds", "image", "imagePullPolicy", "resources", "securityContext",
              "upscalingMode", "version", "volumeMounts"}


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_runs_rays_images_of_the_installed_ray(cluster):
    docker = cluster["docker"]
    assert docker["head_image"].startswith(f"rayproject/ray:{ray.__version__}-py")
    assert docker["worker_image"].startswith(f"rayproject/ray:{ray.__version__}-py")
    assert docker["worker_image"].endswith("-gpu") and not docker["head_image"].endswith("-gpu")
    assert cluster["available_node_types"][cluster["head_node_type"]]["resources"] == {"CPU": 0}


def requirement(name: str):
    """The requirement on `name` in setup.cfg's install_requires."""
    import configparser

    from packaging.requirements import Requirement
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    found = [Requirement(line) for line in config["options"]["install_requires"].split("\n") if line.strip()]
    return next(r for r in found if r.name == name)


@pytest.mark.parametrize("name", ["ray", "mlflow"])
def test_ray_and_mlflow_have_a_tested_range_that_admits_what_is_installed(name):
    import importlib.metadata
    req = requirement(name)
    bounds = {spec.operator for spec in req.specifier}
    assert {">=", "<"} <= bounds, f"setup.cfg: {name} needs a lower and an upper bound (the versions tested)"
    assert importlib.metadata.version(name) in req.specifier, (name, str(req.specifier))


def test_cluster_yamls_images_follow_the_ray_version_setup_cfg_admits(cluster):
    tag = cluster["docker"]["head_image"].split(":")[1].split("-")[0]
    assert tag in requirement("ray").specifier and tag == ray.__version__


def test_cluster_yaml_sets_up_token_authentication_itself(cluster):
    assert "~/.ray/auth_token" in cluster["cluster_synced_files"]  # made on the head, copied to workers
    assert any("get-auth-token --generate" in c for c in cluster["head_setup_commands"])
    starts = [c for c in cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all(c.startswith("RAY_AUTH_MODE=token ") for c in starts)
    assert "auth_token" not in str(cluster["file_mounts"])  # nothing the user must create first


@pytest.mark.parametrize("image, message", [
    ("rayproject/ray:2.49.0-py311-gpu", f"runs Ray 2.49.0, but Ray {ray.__version__} is installed here: "
                                        f"use rayproject/ray:{ray.__version__}-py311-gpu"),
    ("rayproject/ray:latest-gpu", "does not name a Ray version"),
    ("rayproject/ray-ml:2.9.3-py310-gpu", "rayproject/ray-ml images are discontinued"),
])
def test_validate_refuses_an_image_of_another_ray(tmp_path, capsys, cluster, image, message):
    bad = tmp_path / "cluster.yaml"
    bad.write_text(yaml.safe_dump({**cluster, "docker": {**cluster["docker"], "worker_image": image}}))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskdisc: error: ") and len(err.strip().splitlines()) == 1
    assert f"docker.worker_image: {image}" in err and message in err


@pytest.mark.parametrize("change, message", [
    ({"head_node_type": "nope"}, "head_node_type must be one of available_node_types ("),
    ({"max_workers": 0, "available_node_types": {"head": {"node_config": {}, "resources": {}},
                                                 "w": {"node_config": {}, "resources": {}, "min_workers": 2}}},
     "max_workers=0 is below the node types' min_workers (2 in all)"),
    ({"bogus_key": 3}, "Additional properties are not allowed ('bogus_key' was unexpected)"),
    ({"provider": None}, "'provider' is a required mapping"),
    ({"max_workers": "eight"}, "'eight' is not of type 'integer'"),
])
def test_validate_refuses_a_cluster_config_rays_schema_or_node_types_refuse(tmp_path, capsys, cluster, change,
                                                                            message):
    bad = tmp_path / "cluster.yaml"
    bad.write_text(yaml.safe_dump({**cluster, **change}))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"taskdisc: error: {bad}: not a valid Ray cluster config (") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_dockerfile_builds_on_rays_gpu_image_of_the_installed_ray():
    base = re.search(r"^FROM (\S+)", (REPO / "deploy" / "Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(rf"rayproject/ray:{re.escape(ray.__version__)}-py3\d+-gpu", base)


def test_rayjob_manifest_uses_only_documented_kuberay_fields():
    job, claim = yaml.safe_load_all((REPO / "deploy" / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    assert spec["entrypoint"].startswith("taskdisc sweep ") and spec["shutdownAfterJobFinishes"] is True
    rc = spec["rayClusterSpec"]
    assert set(rc) <= RAYCLUSTER_SPEC, set(rc) - RAYCLUSTER_SPEC
    assert rc["rayVersion"] == ray.__version__ and rc["authOptions"] == {"mode": "token"}
    assert rc["enableInTreeAutoscaling"] is True and set(rc["autoscalerOptions"]) <= AUTOSCALER
    head = rc["headGroupSpec"]
    assert set(head) <= HEAD_GROUP and head["rayStartParams"]["num-cpus"] == "0"
    groups = rc["workerGroupSpecs"]
    for group in [head, *groups]:
        assert all(isinstance(v, str) for v in group.get("rayStartParams", {}).values())  # map[string]string
        for container in group["template"]["spec"]["containers"]:
            assert container["name"] and container["image"].endswith(f":{ray.__version__}-gpu")
    for group in groups:
        assert set(group) <= WORKER_GROUP and group["groupName"]
        assert group["minReplicas"] == 0 <= group["replicas"] <= group["maxReplicas"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"
    claims = {v["persistentVolumeClaim"]["claimName"] for g in [head, *groups] for v in g["template"]["spec"]["volumes"]}
    assert claims == {claim["metadata"]["name"]} and claim["spec"]["accessModes"] == ["ReadWriteMany"]
