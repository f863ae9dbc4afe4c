"""A real two-node Ray cluster on 127.0.0.1 (a head and a worker node, each its own raylet and CPU),
token authentication on, driven through ``crawlsift submit`` / ``crawlsift jobs``."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


_TAKEN: set[int] = set()


def _free_port() -> int:
    """A free port no earlier call returned (the OS may hand a just-released port out again, and
    two agents given the same port fail to start)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port


def _pids_with(text: str) -> list[int]:
    """Processes whose command line names ``text``, and all their descendants (the dashboard's module
    processes are forked without the session path in their arguments)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args=", "-ww"], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines() if line.strip()]
    found = {int(pid) for pid, _, args in (r + [""] * (3 - len(r)) for r in rows) if text in args and "ps -eo" not in args}
    children = {}
    for r in rows:
        children.setdefault(int(r[1]), []).append(int(r[0]))
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return sorted(found)


@pytest.fixture(scope="module")
def token_cluster():
    """Head (1 CPU) + worker node (1 CPU), token auth; stopped by killing exactly its processes."""
    token = secrets.token_hex(16)
    temp = tempfile.mkdtemp(prefix="csr", dir="/tmp")  # short: Ray's socket paths have a length limit
    port, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PATH": f"{BIN}:{os.environ['PATH']}",
           "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats"]

    def node_ports():  # two nodes on one host: each agent needs its own ports (the defaults are fixed)
        return [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"]

    subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={port}", f"--dashboard-port={dash}",
                    "--dashboard-host=127.0.0.1", "--include-dashboard=true", *common, *node_ports()], env=env, check=True,
                   capture_output=True, timeout=120)
    subprocess.run([str(BIN / "ray"), "start", f"--address=127.0.0.1:{port}", *common, *node_ports()], env=env, check=True,
                   capture_output=True, timeout=120)
    address = f"http://127.0.0.1:{dash}"
    yield {"address": address, "token": token, "env": env, "temp": temp}
    for _ in range(20):  # until nothing of this cluster is left (its processes start children)
        pids = _pids_with(temp)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.25)
    shutil.rmtree(temp, ignore_errors=True)


PLACEMENT = """
import json, sys
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_nodes, list_tasks
address, job = sys.argv[1], sys.argv[2]
ray_job = JobSubmissionClient(address).get_job_info(job).job_id
tasks = list_tasks(address=address, filters=[("job_id", "=", ray_job)], limit=10000, raise_on_missing_output=False)
nodes = list_nodes(address=address)
print(json.dumps({"task_nodes": sorted({t.node_id for t in tasks if t.node_id}),
                  "alive_nodes": sorted(n.node_id for n in nodes if n.state == "ALIVE")}))
"""


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "cluster.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def _ids(run_dir: Path) -> list[str]:
    return sorted(i for p in sorted((run_dir / "kept").glob("*.parquet")) for i in pq.read_table(p, columns=["id"])["id"].to_pylist())


def test_submit_runs_on_both_nodes_with_token_auth_and_equals_a_local_run(token_cluster, crawl_dir, tmp_path, ray_local):
    from cluster.config import build_config
    from cluster.run import run_pipeline

    inputs = [str(p) for p in sorted((crawl_dir / "jsonl").glob("*.gz"))]
    model = _tiny_quality_model(crawl_dir, tmp_path / "laptop" / "quality.bin")
    stages = ["normalize", "length", "gopher_quality", "c4", {"quality": {"model_path": str(model), "threshold": 0.2}},
              "exact_dedup"]
    config = {"input": {"paths": inputs}, "output": {"path": str(tmp_path / "cluster_run")}, "stages": stages,
              "batch_size": 200}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    env = token_cluster["env"]

    # Without the token, or with a wrong one: refused with one line naming what to set, exit 2.
    no_token = {k: v for k, v in env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    refused = _cli("submit", "--address", token_cluster["address"], str(path), env=no_token)
    assert refused.returncode == 2, refused.stderr
    assert [line for line in refused.stderr.splitlines() if line.strip()] == [refused.stderr.strip()]
    assert "RAY_AUTH_TOKEN" in refused.stderr
    wrong = _cli("submit", "--address", token_cluster["address"], str(path), env={**env, "RAY_AUTH_TOKEN": "0" * 32})
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr, wrong.stderr

    done = _cli("submit", "--address", token_cluster["address"], str(path), "--wait", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    job_id = done.stdout.strip().splitlines()[-1]
    # The model on the submitting machine travelled with the job; every node read the shipped copy.
    shipped = json.loads((tmp_path / "cluster_run" / "summary.json").read_text())["config"]["stages"][4]["quality"]
    assert shipped["model_path"] == "models/4-quality/quality.bin", shipped
    assert f"shipping {model} with the job" in done.stderr
    assert token_cluster["token"] not in done.stdout + done.stderr

    status = _cli("jobs", "status", job_id, "--address", token_cluster["address"], env=env)
    assert status.stdout.strip() == "SUCCEEDED"
    logs = _cli("jobs", "logs", job_id, "--address", token_cluster["address"], env=env)
    assert "input documents" in logs.stdout and token_cluster["token"] not in logs.stdout
    listed = _cli("jobs", "list", "--address", token_cluster["address"], env=env)
    assert job_id in listed.stdout

    # Placement, from the state API (in a process of its own: Ray caches the token it loads first).
    probe = subprocess.run([sys.executable, "-c", PLACEMENT, token_cluster["address"], job_id], env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    placement = json.loads(probe.stdout.strip().splitlines()[-1])
    nodes, alive = set(placement["task_nodes"]), set(placement["alive_nodes"])
    assert len(alive) == 2 and nodes == alive, (nodes, alive)

    summary = json.loads((tmp_path / "cluster_run" / "summary.json").read_text())
    local = run_pipeline(build_config({**config, "output": {"path": str(tmp_path / "local_run")}}), progress=False)
    for key in ("input_documents", "kept", "rejected", "unreadable"):
        assert summary[key] == local[key], key
    assert _ids(tmp_path / "cluster_run") == _ids(tmp_path / "local_run")


def _tiny_quality_model(crawl_dir: Path, path: Path) -> Path:
    """A small fastText quality model (C4 text against shuffled-word noise), trained in a second."""
    import random

    from ingest.readers import InputSpec, read_file, resolve_inputs

    c4 = str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")
    texts = [t for f in resolve_inputs([c4]) for b in read_file(f, InputSpec(paths=(c4,)), 10_000)
             for t in b.column("text").to_pylist()][:400]
    rng = random.Random(0)
    lines = []
    for text in texts:
        words = text.split()
        lines.append("__label__hq " + " ".join(words[:200]))
        rng.shuffle(words)
        lines.append("__label__lq " + " ".join(w.upper() for w in words[:200]))
    path.parent.mkdir(parents=True, exist_ok=True)
    train = path.with_suffix(".txt")
    train.write_text("\n".join(lines) + "\n")
    # In a fresh interpreter: after some other tests in the same pytest process, fastText's trainer
    # reports "Encountered NaN" on this same input (an in-process state it is sensitive to; the
    # same call passes in a clean process).
    subprocess.run([sys.executable, "-c", "import sys, fasttext; fasttext.train_supervised(sys.argv[1], epoch=3, "
                    "bucket=20_000, thread=1, seed=0, verbose=0).save_model(sys.argv[2])", str(train), str(path)],
                   check=True, capture_output=True)
    return path


def _local_account(config: dict, out: Path) -> dict:
    from cluster.config import build_config
    from cluster.run import run_pipeline

    return run_pipeline(build_config({**config, "output": {"path": str(out)}}), progress=False)


def _slow_pipeline(crawl_dir: Path, out: Path) -> dict:
    """Enough work to be caught mid-run: every crawl file, small batches, the Gopher and C4 rules."""
    inputs = [str(p) for p in sorted((crawl_dir / "jsonl").iterdir())] + [str(p) for p in sorted((crawl_dir / "warc").iterdir())]
    return {"input": {"paths": inputs}, "output": {"path": str(out)}, "batch_size": 50,
            "stages": ["normalize", "length", "gopher_repetition", "gopher_quality", "c4", "fineweb"]}


def _wait_for_done(out: Path, at_least: int, proc_or_none=None, timeout: float = 300) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = len(list((out / "_state" / "done").glob("*.json")))
        if done >= at_least:
            return done
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} inputs finished in {timeout}s")


@pytest.mark.slow
def test_a_stopped_job_resubmitted_resumes_from_the_finished_work(token_cluster, crawl_dir, tmp_path, ray_local):
    env, address = token_cluster["env"], token_cluster["address"]
    config = _slow_pipeline(crawl_dir, tmp_path / "run")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    first = _cli("submit", "--address", address, str(path), env=env)
    assert first.returncode == 0, first.stderr
    job = first.stdout.strip().splitlines()[-1]
    started = time.time()
    done_when_stopped = _wait_for_done(tmp_path / "run", 2)
    stopped_at = time.time() - started
    stop = _cli("jobs", "stop", job, "--address", address, env=env)
    assert stop.returncode == 0, stop.stderr
    deadline = time.time() + 120
    while _cli("jobs", "status", job, "--address", address, env=env).stdout.strip() not in ("STOPPED", "SUCCEEDED", "FAILED"):
        assert time.time() < deadline
        time.sleep(1)
    assert _cli("jobs", "status", job, "--address", address, env=env).stdout.strip() == "STOPPED"

    resubmitted = time.time()
    again = _cli("submit", "--address", address, str(path), "--wait", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    _figures("stop-and-resubmit", stopped_after_s=stopped_at, inputs_done_when_stopped=done_when_stopped,
             inputs=summary["input_files"], inputs_redone=summary["input_files_processed_this_run"],
             resubmitted_run_s=time.time() - resubmitted, input_documents=summary["input_documents"], kept=summary["kept"])
    assert summary["input_files_processed_this_run"] <= summary["input_files"] - done_when_stopped
    local = _local_account(config, tmp_path / "local")
    for key in ("input_documents", "kept", "rejected", "unreadable"):
        assert summary[key] == local[key], key
    assert _ids(tmp_path / "run") == _ids(tmp_path / "local")


@pytest.mark.slow
def test_a_train_lm_job_on_the_cluster(token_cluster, crawl_dir, tmp_path):
    env, address = token_cluster["env"], token_cluster["address"]
    train = {"input": [str(crawl_dir / "jsonl" / "olmo_c4-sample.00000-of-00001.json.gz")], "output": str(tmp_path / "lm"),
             "tokenizer": str(crawl_dir.parent / "tokenizer" / "gpt-neo-test-tokenizer.json"), "workers": 1,
             "max_steps": 6, "context": 64, "batch_size": 4, "log_every": 3, "eval_every": 6, "checkpoint_every": 6}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(train))
    done = _cli("submit", "--address", address, "--job", "train-lm", str(path), "--wait", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    job = done.stdout.strip().splitlines()[-1]
    logs = _cli("jobs", "logs", job, "--address", address, env=env).stdout
    assert (tmp_path / "lm" / "eval.json").is_file(), logs[-3000:]
    final = json.loads((tmp_path / "lm" / "eval.json").read_text())
    assert final["step"] == 6 and (tmp_path / "lm" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_losing_a_worker_nodes_raylet_mid_run_keeps_the_account_exact(token_cluster, crawl_dir, tmp_path, ray_local):
    """Runs last in this module: it takes the worker node away. Ray retries the lost tasks on the head;
    nothing is lost or written twice (parts are named by input and position, renamed atomically)."""
    env, address = token_cluster["env"], token_cluster["address"]
    config = _slow_pipeline(crawl_dir, tmp_path / "run")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "cluster.cli", "submit", "--address", address, str(path), "--wait"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.time()
    done_at_kill = _wait_for_done(tmp_path / "run", 1)
    (raylet,) = [p for p in _pids_with(token_cluster["temp"]) if "sockets/raylet.1" in _args_of(p) and "raylet/raylet" in _args_of(p)]
    os.kill(raylet, signal.SIGKILL)
    killed = time.time()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    _figures("raylet-killed", killed_after_s=killed - started, inputs_done_at_kill=done_at_kill,
             inputs=summary["input_files"], finished_after_kill_s=time.time() - killed,
             input_documents=summary["input_documents"], kept=summary["kept"], unreadable=summary["unreadable"])
    local = _local_account(config, tmp_path / "local")
    for key in ("input_documents", "kept", "rejected", "unreadable"):
        assert summary[key] == local[key], key
    assert _ids(tmp_path / "run") == _ids(tmp_path / "local")


def _figures(fault: str, **numbers) -> None:
    """One line per fault test with its numbers (``pytest -s`` shows them; the closing note quotes them)."""
    print(f"\nfault figures: {fault}: " + json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in numbers.items()}))


def _args_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_submission_ships_local_models_and_leaves_uris_alone(tmp_path, monkeypatch):
    """What the staged working directory holds: local model files and directories named by stages,
    the trainer's section or a job's flags, with the config pointing at the copies; URIs untouched;
    more than a working directory carries is one line naming object storage."""
    from cluster import submit

    model = tmp_path / "q.bin"
    model.write_bytes(b"\0" * 1000)
    encoder = tmp_path / "edu"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "input": {"paths": ["s3://crawl/in/*"]}, "output": {"path": "s3://crawl/out"},
        "stages": ["length", {"quality": {"model_path": str(model), "threshold": 0.5}},
                   {"model_classifier": {"model_path": "s3://models/edu"}}],
        "train": {"model": str(encoder), "tokenizer": "s3://models/tok.json"}}))
    staging, name = submit.stage_working_dir(str(config))
    try:
        staged = yaml.safe_load((Path(staging) / name).read_text())
        assert staged["stages"][1]["quality"]["model_path"] == "models/1-quality/q.bin"
        assert (Path(staging) / "models/1-quality/q.bin").read_bytes() == model.read_bytes()
        assert staged["stages"][2]["model_classifier"]["model_path"] == "s3://models/edu"
        assert staged["train"] == {"model": "models/train-model/edu", "tokenizer": "s3://models/tok.json"}
        assert (Path(staging) / "models/train-model/edu/config.json").is_file()
        flags = submit.ship_flag_models(["--input", "x", f"--model={encoder}", "--tokenizer", str(model)], Path(staging))
        assert flags == ["--input", "x", "--model=models/job-model/edu", "--tokenizer", "models/job-tokenizer/q.bin"]
    finally:
        shutil.rmtree(staging)

    monkeypatch.setattr(submit, "SHIP_LIMIT_BYTES", 500)
    with pytest.raises(submit.SubmitError, match="object storage"):
        submit.stage_working_dir(str(config))
