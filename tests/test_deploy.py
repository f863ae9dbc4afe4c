"""The deployment files beside the code: token auth in every one, no secret in any, and the
resources they give consistent with what the stages and the trainer ask for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "cluster" / "deploy"
FILES = sorted(DEPLOY.rglob("*.yaml"))


def _cpu(v) -> float:
    v = str(v)
    return float(v[:-1]) / 1000 if v.endswith("m") else float(v)


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def _kuberay_groups(doc: dict) -> dict[str, dict]:
    """group name -> {cpus, gpus} that Ray sees on one node of the group."""
    spec = _cluster_spec(doc)
    groups = {}
    for name, group in [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]:
        (container,) = group["template"]["spec"]["containers"]
        res = container["resources"]
        assert res["requests"] == res["limits"], f"{name}: requests != limits (Ray would see the limits)"
        params = group["rayStartParams"]
        cpus = float(params.get("num-cpus", _cpu(res["limits"]["cpu"])))
        assert cpus <= _cpu(res["limits"]["cpu"]), f"{name}: num-cpus above the container's CPUs"
        gpus = float(params.get("num-gpus", res["limits"].get("nvidia.com/gpu", 0)))
        assert gpus == float(res["limits"].get("nvidia.com/gpu", 0)), f"{name}: num-gpus != nvidia.com/gpu"
        for env in container.get("env", []):
            assert not (env["name"] in ("RAY_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY") and "value" in env), \
                f"{name}: a literal secret in the manifest"
        groups[name] = {"cpus": cpus, "gpus": gpus}
    return groups


def test_every_deployment_file_parses_and_has_token_auth():
    assert {p.name for p in FILES} >= {"raycluster.yaml", "rayjob.yaml", "cluster.yaml"}
    for path in FILES:
        doc = yaml.safe_load(path.read_text())
        text = path.read_text()
        if "kind" in doc:
            assert doc["apiVersion"] == "ray.io/v1"
            spec = _cluster_spec(doc)
            assert spec["authOptions"]["mode"] == "token", path
            assert tuple(int(x) for x in spec["rayVersion"].split(".")[:2]) >= (2, 52), path
            _kuberay_groups(doc)
        else:  # cluster launcher: every ray start runs with the token mode and a token file, never a literal token
            starts = doc["head_start_ray_commands"] + doc["worker_start_ray_commands"]
            for cmd in (c for c in starts if "ray start" in c):
                assert "RAY_AUTH_MODE=token" in cmd and "RAY_AUTH_TOKEN_PATH=" in cmd, cmd
            assert "RAY_AUTH_TOKEN=" not in text
        if path.name == "rayjob.yaml":
            assert doc["spec"]["entrypoint"].startswith("python -m cluster.cli run --config ")


@pytest.mark.parametrize("name", ["kuberay/raycluster.yaml", "kuberay/rayjob.yaml"])
def test_kuberay_groups_fit_what_stages_and_trainers_ask_for(name):
    from cluster.config import DEFAULT_STAGES, build_config
    from filters.model_classifier import ModelClassifier
    from train.loop import plan_workers

    groups = _kuberay_groups(yaml.safe_load((DEPLOY / name).read_text()))
    cpu_nodes = [g for n, g in groups.items() if g["gpus"] == 0 and n != "head"]
    gpu_nodes = [g for g in groups.values() if g["gpus"] > 0]
    assert cpu_nodes and gpu_nodes and groups["head"]["cpus"] == 0  # the head runs drivers only
    config = build_config({}, inputs=["nowhere"], output="s3://bucket/out", resolve=False)
    assert [s.name for s in config.stages] == list(DEFAULT_STAGES)
    for stage in config.stages:
        assert stage.num_cpus <= min(g["cpus"] for g in cpu_nodes), stage.name
        assert getattr(stage, "num_gpus", 0) == 0, f"{stage.name} would need a GPU node"
    from train.classifier import bundled_encoder_path

    gpu_stage = ModelClassifier(model_path=bundled_encoder_path(), device="cuda")
    assert gpu_stage.num_gpus == 1 and gpu_stage.num_gpus <= min(g["gpus"] for g in gpu_nodes)
    # The trainer: one worker per GPU, each asking for at most its node's CPUs per GPU.
    ratio = min(g["cpus"] / g["gpus"] for g in gpu_nodes)
    total_cpus = sum(g["cpus"] for g in groups.values())
    total_gpus = sum(g["gpus"] for g in gpu_nodes)
    plan = plan_workers(None, "auto", total_cpus, total_gpus, cpus_per_gpu=ratio)
    assert plan.use_gpu and plan.workers == total_gpus
    assert plan.cpus_per_worker * min(g["gpus"] for g in gpu_nodes) <= min(g["cpus"] for g in gpu_nodes)
