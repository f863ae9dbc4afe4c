"""``crawlsift submit`` and ``crawlsift jobs``: runs as detached Ray jobs through the Job Submission API.

A submission stages the project's packages and the pipeline file into a temporary working directory
(Ray uploads it as the job's ``working_dir``), so the job runs ``python -m cluster.cli run --config
pipeline.yaml`` (or a ``train lm`` / ``train classifier`` command) on the cluster with exactly this
code. Local model files and directories the job names (a stage's ``model_path``, the trainer's
``model`` / ``tokenizer``) travel in the same directory, which Ray unpacks on every node that runs the
job's tasks; models on object storage are read by each node. The cluster's nodes carry the
dependencies (the same ``pip install -e .`` or image); nothing is installed at submission time.

Security: a cluster started with ``RAY_AUTH_MODE=token`` refuses a request without the token. The
token is read from ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` by Ray's own client and sent as a
header; it is never written into the staged directory, the job's environment variables, the
entrypoint or any output.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ingest", "filters", "dedup", "train", "cluster", "bench", "audit", "report")
TERMINAL = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3}
# --job -> the crawlsift command the job runs (the staged config, if any, is passed as --config).
JOBS = {"run": ["run"], "train-lm": ["train", "lm"], "train-classifier": ["train", "classifier"]}
SECRET_ENV = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class SubmitError(ValueError):
    """One line for the user, exit 2."""


def add_submit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.yaml", nargs="?",
                   help="the pipeline config to run (--job run), or a train.yaml (--job train-lm)")
    p.add_argument("--job", choices=list(JOBS), default="run",
                   help="run: the pipeline; train-lm: train lm with CONFIG as its --config; train-classifier: "
                        "train classifier with the flags after --")
    p.add_argument("--address", default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"),
                   help="the cluster's dashboard / job server, http://HEAD:8265 (default: $RAY_ADDRESS)")
    p.add_argument("--job-id", help="submission id (default: generated)")
    p.add_argument("--wait", action="store_true", help="wait for the job's end; exit 0 succeeded, 1 failed, 3 stopped")
    p.add_argument("--follow", action="store_true", help="stream the job's log until it ends (implies --wait)")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")


def add_jobs_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "status", "logs", "stop"])
    p.add_argument("job_id", nargs="?")
    p.add_argument("--address", default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"))


def _client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    if not address:
        raise SubmitError("no cluster address: give --address http://HEAD:8265 or set RAY_ADDRESS")
    if not address.startswith(("http://", "https://")):
        raise SubmitError(f"--address {address}: the job server's address is http://HEAD:8265 (the dashboard port)")
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # noqa: BLE001 - connection and auth failures surface as assorted exceptions
        raise SubmitError(_explain(address, exc)) from None


def _explain(address: str, exc: Exception) -> str:
    text = str(exc)
    low = text.lower()
    if "401" in text or "403" in text or "unauthorized" in low or "authentication" in low or "token" in low:
        if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
            return (f"{address} requires token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                    "(or RAY_AUTH_TOKEN_PATH) to the cluster's token")
        return f"{address} refused the token in RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH: set the cluster's token"
    if "connection" in low or "refused" in low or "timed out" in low or "failed to connect" in low:
        return f"cannot reach the job server at {address}: {type(exc).__name__}"
    return f"{address}: {type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


# Ray refuses a working_dir package over 500 MiB (runtime_env's GCS upload limit); leave room for code.
SHIP_LIMIT_BYTES = 400 * 2**20
# Where a config names a model file or directory: (section, key) pairs; stages are searched separately.
MODEL_KEYS = (("train", "model"), ("train", "tokenizer"), (None, "model"), (None, "tokenizer"))


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ship_models(data: dict, staging: Path) -> list[tuple[str, str]]:
    """Copy every local model file or directory the config names into ``staging/models`` and point
    the config at the copy, a path relative to the job's working directory, which Ray unpacks on every
    node that runs the job's tasks. Returns (original, shipped) pairs. Object-storage URIs stay as
    they are: each node reads them itself."""
    slots = []
    for i, entry in enumerate(data.get("stages") or []):
        if isinstance(entry, dict) and len(entry) == 1:
            (name, params), = entry.items()
            if isinstance(params, dict) and isinstance(params.get("model_path"), str):
                slots.append((params, "model_path", f"{i}-{name}"))
    settings = data.get("set")
    if isinstance(settings, dict):  # a recipe's model given as set: {quality.model_path: PATH}
        for key, value in settings.items():
            if str(key).endswith(".model_path") and isinstance(value, str):
                slots.append((settings, key, f"set-{str(key).split('.', 1)[0]}"))
    for section, key in MODEL_KEYS:
        holder = data.get(section) if section else data
        if isinstance(holder, dict) and isinstance(holder.get(key), str):
            slots.append((holder, key, f"{section or 'job'}-{key}"))
    shipped, total = [], 0
    for holder, key, tag in slots:
        value = holder[key]
        source = Path(value).expanduser()
        if "://" in value or not source.exists():
            continue  # a URI, or a name the job resolves itself (an arch, a missing file the config check reports)
        total += _size(source)
        if total > SHIP_LIMIT_BYTES:
            raise SubmitError(f"{value}: the models this job names exceed {SHIP_LIMIT_BYTES >> 20} MiB, more than a Ray "
                              "job's working directory carries; put them on object storage (s3://...) and name the URI")
        target = Path("models") / tag / source.name
        (staging / target).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, staging / target)
        holder[key] = str(target)
        shipped.append((value, str(target)))
    return shipped


def ship_flag_models(flags: list[str], staging: Path) -> list[str]:
    """``ship_models`` for a job's command-line flags (``--model DIR``, ``--tokenizer PATH``)."""
    flags = list(flags)
    for i, flag in enumerate(flags):
        key, _, inline = flag.partition("=")
        if key not in ("--model", "--tokenizer") or (not inline and i + 1 >= len(flags)):
            continue
        holder = {key[2:]: inline or flags[i + 1]}
        if ship_models(holder, staging):
            if inline:
                flags[i] = f"{key}={holder[key[2:]]}"
            else:
                flags[i + 1] = holder[key[2:]]
    return flags


def stage_working_dir(config_path: str | None) -> tuple[str, str]:
    """A temporary directory with the project's packages, the config file and the local models it
    names (see ``ship_models``); returns (dir, config name)."""
    if config_path:
        text = Path(config_path).read_text()
        for name in SECRET_ENV:
            value = os.environ.get(name)
            if value and value in text:
                raise SubmitError(f"{config_path} contains the value of {name}; secrets come from the environment, not the config file")
    staging = tempfile.mkdtemp(prefix="crawlsift-job-")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, Path(staging) / pkg, ignore=shutil.ignore_patterns("__pycache__", "results", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", Path(staging) / "pyproject.toml")
    if config_path:
        import yaml

        data = yaml.safe_load(text) or {}
        try:
            shipped = ship_models(data, Path(staging)) if isinstance(data, dict) else []
        except SubmitError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if shipped:
            (Path(staging) / "job.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
            for original, target in shipped:
                print(f"crawlsift: shipping {original} with the job as {target}", file=sys.stderr)
        else:
            shutil.copy(config_path, Path(staging) / "job.yaml")
    return staging, "job.yaml"


def _check_job_config(job: str, config: str | None, extra: list[str]) -> dict:
    """The job's own config, checked here (names and types) so a typo is one line, not a failed job."""
    from cluster.config import build_config, load_yaml

    if job == "train-classifier":
        if config:
            raise SubmitError("--job train-classifier takes its options as flags after --, not a config file")
        if not extra:
            raise SubmitError("--job train-classifier needs its flags after --, e.g. -- --input GLOB --label-field label --output DIR")
        return {}
    if not config:
        raise SubmitError(f"--job {job} needs a config file")
    data = load_yaml(config)
    if job == "run":
        build_config(data, resolve=False)
    else:
        from train.lm import check_options, config_from

        check_options(config_from(data.get("train", data), config))
    return data


def submit(args) -> int:
    import shlex

    extra = list(getattr(args, "extra", None) or [])
    data = _check_job_config(args.job, args.config, extra)
    client = _client(args.address)
    staging, name = stage_working_dir(args.config) if args.config else stage_working_dir(None)
    try:
        extra = ship_flag_models(extra, Path(staging))
    except SubmitError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    command = JOBS[args.job] + (["--config", name] if args.config else []) + extra + ["--quiet"]
    entrypoint = "python -m cluster.cli " + shlex.join(command)
    output = data.get("output")
    output = str(output.get("path", "")) if isinstance(output, dict) else str(output or "")
    if "://" not in output:
        print("crawlsift: note: the output is not object storage; it is written on the node that runs the job's driver",
              file=sys.stderr)
    try:
        job_id = _submit_with_retry(client, dict(
            entrypoint=entrypoint, submission_id=args.job_id,
            runtime_env={"working_dir": staging, "env_vars": {"PYTHONUNBUFFERED": "1"}},
            metadata={"crawlsift": args.job, "config": os.path.basename(args.config or "")}), args.address)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(job_id)
    if args.follow:
        return _follow(client, job_id, args.timeout)
    if args.wait:
        return _wait(client, job_id, args.timeout)
    return 0


def _submit_with_retry(client, request: dict, address: str, patience: float = 60.0) -> str:
    """Submit; a head that has just started answers 'no available agent' until its job agent is up,
    so that (and only that) is retried with backoff."""
    delay, start = 0.5, time.monotonic()
    while True:
        try:
            return client.submit_job(**request)
        except Exception as exc:  # noqa: BLE001
            if "No available agent" in str(exc) and time.monotonic() - start < patience:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            raise SubmitError(_explain(address, exc)) from None


def _wait(client, job_id: str, timeout: float | None) -> int:
    start = time.monotonic()
    while True:
        status = str(client.get_job_status(job_id)).split(".")[-1]
        if status in TERMINAL:
            print(f"crawlsift: job {job_id} {status.lower()}", file=sys.stderr)
            return TERMINAL[status]
        if timeout is not None and time.monotonic() - start > timeout:
            print(f"crawlsift: job {job_id} still {status.lower()} after {timeout:g}s", file=sys.stderr)
            return 4
        time.sleep(1.0)


def _follow(client, job_id: str, timeout: float | None) -> int:
    import asyncio

    async def tail():
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    try:
        asyncio.run(asyncio.wait_for(tail(), timeout))
    except asyncio.TimeoutError:
        pass
    return _wait(client, job_id, 0 if timeout else None)


def jobs(args) -> int:
    client = _client(args.address)
    try:
        if args.action == "list":
            for job in sorted(client.list_jobs(), key=lambda j: j.start_time or 0):
                status = str(job.status).split(".")[-1]
                print(f"{job.submission_id or job.job_id}\t{status}\t{job.entrypoint}")
            return 0
        if not args.job_id:
            raise SubmitError(f"jobs {args.action} needs a JOB_ID (see crawlsift jobs list)")
        if args.action == "status":
            status = str(client.get_job_status(args.job_id)).split(".")[-1]
            print(status)
            return TERMINAL.get(status, 0) if status in TERMINAL else 0
        if args.action == "logs":
            sys.stdout.write(client.get_job_logs(args.job_id))
            return 0
        stopped = client.stop_job(args.job_id)
        print(f"{args.job_id}: {'stop requested' if stopped else 'not running'}")
        return 0
    except SubmitError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SubmitError(_explain(args.address, exc)) from None
