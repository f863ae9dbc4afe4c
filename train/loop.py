"""Pieces every training job shares: worker sizing, threads, the learning-rate schedule, the
broadcast of rank 0's batches, checkpoints, metrics, FLOPs/MFU and the loss plot."""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.models import TrainInputError

# Dense bf16 tensor-core peaks without sparsity (vendor data sheets), by a substring of
# torch.cuda.get_device_name(). H100 SXM 989 TFLOPs; H200 has the same compute as H100 SXM.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
}


# ---------------------------------------------------------------------------------------------
# Sizing: the feed must always have CPUs of its own.


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    use_gpu: bool
    cpus_per_worker: float
    threads_per_worker: int
    feed_cpus: float

    def describe(self) -> str:
        kind = "1 GPU + " if self.use_gpu else ""
        return (f"{self.workers} worker(s) x ({kind}{self.cpus_per_worker:g} CPU, {self.threads_per_worker} torch thread(s)); "
                f"{self.feed_cpus:g} CPU left for the Ray Data feed")


def plan_workers(workers: int | None, device: str, cluster_cpus: float, cluster_gpus: float,
                 feed_cpus: float | None = None, cpus_per_worker: float | None = None,
                 cpus_per_gpu: float | None = None) -> WorkerPlan:
    """Size the Ray Train workers so the Ray Data feed always has CPUs to run on.

    A worker group that reserves every CPU leaves Ray Data's read and tokenize tasks unschedulable
    and the job waits forever (seen with 2 CPU workers on a 2-CPU node). So ``feed_cpus`` (default 1,
    or half the CPUs on a 1-CPU node) is kept out of the workers' reservation, and CPU workers share
    the rest as fractional reservations; each worker runs ``floor(cpus_per_worker)`` (at least 1) torch
    threads, set explicitly because Ray sets ``OMP_NUM_THREADS`` to the reservation. A GPU worker asks
    for at most the CPUs its node has per GPU (``cpus_per_gpu``, the smallest over the GPU nodes), up to
    8, so a worker group always fits on the GPU nodes."""
    if device not in ("auto", "cpu", "cuda"):
        raise TrainInputError(f"--device {device!r}: expected auto, cpu or cuda")
    use_gpu = device == "cuda" or (device == "auto" and cluster_gpus >= 1)
    if device == "cuda" and cluster_gpus < 1:
        raise TrainInputError("--device cuda: the Ray cluster has no GPU")
    if workers is not None and workers < 1:
        raise TrainInputError(f"--workers must be >= 1, got {workers}")
    if feed_cpus is None:
        feed_cpus = 1.0 if cluster_cpus >= 2 else cluster_cpus / 2
    if use_gpu:
        workers = workers or int(cluster_gpus)
        if workers > cluster_gpus:
            raise TrainInputError(f"--workers {workers}: the Ray cluster has {cluster_gpus:g} GPU(s)")
        per = cpus_per_worker
        if per is None:
            per = max(1.0, min(8.0, (cluster_cpus - feed_cpus) // workers))
            if cpus_per_gpu is not None:
                per = max(1.0, min(per, math.floor(cpus_per_gpu)))
    else:
        workers = workers or 1
        per = cpus_per_worker or (cluster_cpus - feed_cpus) / workers
    if per <= 0 or workers * per + feed_cpus > cluster_cpus + 1e-9:
        raise TrainInputError(
            f"{workers} worker(s) x {per:g} CPU plus {feed_cpus:g} CPU for the data feed do not fit the cluster's "
            f"{cluster_cpus:g} CPUs; use fewer --workers")
    return WorkerPlan(workers, use_gpu, round(per, 4), max(1, int(math.floor(per + 1e-9))), feed_cpus)


def say(line: str) -> None:
    """A progress line from a training worker. Written to the process's real stdout (Ray forwards it
    to the driver once): Ray Train's patched ``print`` would also log it, so it showed twice."""
    import sys

    sys.__stdout__.write(line + "\n")
    sys.__stdout__.flush()


def quiet_worker_logs() -> None:
    """Ray Train logs every report and checkpoint at INFO from each worker; the job's own progress
    line says the same once."""
    import logging

    import ray.train.v2._internal.execution.context as train_context
    from transformers.utils import logging as hf_logging

    logging.getLogger("ray.train").setLevel(logging.WARNING)
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)  # that module names its logger by path
    hf_logging.disable_progress_bar()


def set_threads(threads: int) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Schedule


def cosine_with_warmup(step: int, *, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    """Multiplier of the peak learning rate at optimizer ``step`` (0-based): linear warm-up over
    ``warmup`` steps, then cosine decay to ``min_ratio`` of the peak at ``total`` (Chinchilla /
    Llama practice: 10% of the peak)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw_param_groups(model, weight_decay: float):
    """Weight decay on matrices only: not on norms, biases or embeddings' 1-D parameters."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------------------------
# Collective helpers (no-ops with one process)


def world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast_rows(batch: np.ndarray | None, width: int, device) -> np.ndarray | None:
    """Rank 0's int32 array [n, width] (or None = the data is exhausted) to every rank."""
    import torch
    import torch.distributed as dist

    rank, size = world()
    if size == 1:
        return batch
    header = torch.zeros(2, dtype=torch.int64, device=device)
    if rank == 0:
        header[0] = -1 if batch is None else batch.shape[0]
        header[1] = width
    dist.broadcast(header, 0)
    n = int(header[0])
    if n < 0:
        return None
    data = torch.from_numpy(batch).to(device) if rank == 0 else torch.empty((n, width), dtype=torch.int32, device=device)
    dist.broadcast(data, 0)
    return data.cpu().numpy() if rank != 0 else batch


def all_reduce(values: list[float], device, mean: bool = False) -> list[float]:
    """The sum (or mean) of each value over the ranks, in float64."""
    import torch
    import torch.distributed as dist

    _, size = world()
    if size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / size if mean else t).tolist()


# ---------------------------------------------------------------------------------------------
# Checkpoints: one directory per reported checkpoint; ``state.json`` is written last and records
# the byte size of every other file. Ray copies a reported directory into storage file by file,
# in no fixed order, so a process killed mid-copy can leave a readable ``state.json`` beside a
# truncated ``model.pt`` (or a truncated ``state.json``): a directory counts as complete only
# when ``state.json`` parses and every file it names has the size it recorded.

STATE_FILE = "state.json"
WEIGHTS_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"


def write_checkpoint(directory: str, *, model_state: dict, optimizer_state: dict, scheduler_state: dict,
                     state: dict) -> None:
    import torch

    torch.save(model_state, os.path.join(directory, WEIGHTS_FILE))
    torch.save({"optimizer": optimizer_state, "scheduler": scheduler_state}, os.path.join(directory, OPTIMIZER_FILE))
    sizes = {name: os.path.getsize(os.path.join(directory, name)) for name in (WEIGHTS_FILE, OPTIMIZER_FILE)}
    with open(os.path.join(directory, STATE_FILE), "w") as f:
        json.dump({**state, "file_sizes": sizes}, f)


def _complete_state(raw: bytes, size_of) -> dict | None:
    """The parsed state when the checkpoint it describes is complete (see above), else None.
    ``size_of(name)`` is the size of a sibling file, or None when it is missing."""
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    sizes = state.get("file_sizes") or {}
    # A checkpoint from before sizes were recorded: the files must at least exist.
    expected = {name: sizes.get(name) for name in (WEIGHTS_FILE, OPTIMIZER_FILE)}
    for name, want in expected.items():
        have = size_of(name)
        if have is None or (want is not None and have != want):
            return None
    return state


def read_checkpoint(directory: str) -> tuple[dict, dict, dict]:
    import torch

    with open(os.path.join(directory, STATE_FILE)) as f:
        state = json.load(f)
    model_state = torch.load(os.path.join(directory, WEIGHTS_FILE), map_location="cpu", weights_only=True)
    opt = torch.load(os.path.join(directory, OPTIMIZER_FILE), map_location="cpu", weights_only=False)
    return state, model_state, opt


def latest_checkpoint(checkpoint_root: str) -> tuple[str, dict] | None:
    """The complete checkpoint with the highest step under ``checkpoint_root`` (any run name)."""
    best = None
    for state_path in glob.glob(os.path.join(checkpoint_root, "*", "checkpoint_*", STATE_FILE)):
        d = os.path.dirname(state_path)

        def size_of(name, d=d):
            p = os.path.join(d, name)
            return os.path.getsize(p) if os.path.isfile(p) else None

        try:
            raw = Path(state_path).read_bytes()
        except OSError:
            continue
        state = _complete_state(raw, size_of)
        if state is None:
            continue
        if best is None or state["step"] > best[1]["step"]:
            best = (d, state)
    return best


def report_checkpoint(metrics: dict, write, rank: int) -> None:
    """``ray.train.report`` on every rank; rank 0 attaches a checkpoint written by ``write(dir)``."""
    import ray.train

    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="crawlsift-ckpt-") as tmp:
        write(tmp)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


# ---------------------------------------------------------------------------------------------
# Metrics and plots


class MetricsLog:
    """``metrics.jsonl`` in the output directory, one object per logged step; on resume, lines past
    the resumed step (written by the run that was killed) are dropped first."""

    def __init__(self, path: str, resume_step: int | None = None):
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            Path(path).write_text("")
        elif os.path.exists(path):
            keep = [line for line in Path(path).read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            Path(path).write_text("".join(line + "\n" for line in keep))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def lm_flops_per_token(n_params: int, layers: int, hidden: int, context: int, embedding_params: int = 0) -> float:
    """Training FLOPs per token: 6 N (forward + backward matmuls over the non-embedding parameters;
    Kaplan et al. 2020) plus the attention scores and values, 12 L d T (PaLM, Chowdhery et al. 2022,
    appendix B)."""
    return 6 * (n_params - embedding_params) + 12 * layers * hidden * context


def peak_flops(device_name: str) -> float | None:
    for key, value in PEAK_BF16_FLOPS.items():
        if key in device_name:
            return value
    return None


def plot_curves(path: str, series: dict[str, tuple[list, list]], *, xlabel: str, ylabel: str, title: str,
                points: dict[str, tuple[list, list]] | None = None) -> None:
    """One PNG with a line per series (and markers per ``points`` series)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, (x, y) in series.items():
        ax.plot(x, y, label=label, linewidth=1.4)
    for label, (x, y) in (points or {}).items():
        ax.plot(x, y, "o-", label=label, markersize=4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)




# ---------------------------------------------------------------------------------------------
# The run's output directory: a local path, or any URI the readers take (s3://bucket/run?...)


class RunDir:
    """Where a training run's files live. Local: used in place. Remote: files are written in a local
    working copy and pushed (metrics after every write, the model and eval at the end); checkpoints go
    straight to the remote through Ray Train's storage filesystem. Picklable: workers rebuild the
    filesystem from the URI."""

    def __init__(self, uri: str):
        self.uri = uri
        self.remote = "://" in uri
        self._fs = None
        self._local = None if self.remote else os.path.abspath(uri)

    @property
    def fs(self):
        if self._fs is None:
            from ingest.readers import filesystem_for

            self._fs, self._root = filesystem_for(self.uri)
        return self._fs

    @property
    def root(self) -> str:
        self.fs  # noqa: B018 - resolves the root with the filesystem
        return self._root

    def remote_path(self, rel: str = "") -> str:
        return "/".join(p for p in (self.root.rstrip("/"), rel) if p)

    def local(self, rel: str = "") -> str:
        """The local working copy (created on first use)."""
        if self._local is None:
            self._local = tempfile.mkdtemp(prefix="crawlsift-run-")
        return os.path.join(self._local, rel) if rel else self._local

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fs"] = None
        if self.remote:
            state["_local"] = None  # another process has its own working copy
        return state

    def exists(self, rel: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.remote_path(rel)).type != pafs.FileType.NotFound

    def push(self, rel: str) -> None:
        """Copy a file or directory of the working copy to the remote (no-op when local)."""
        if not self.remote:
            return
        import pyarrow.fs as pafs

        src = self.local(rel)
        if os.path.isdir(src):
            pafs.copy_files(src, self.remote_path(rel), source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
        elif os.path.exists(src):
            with open(src, "rb") as f, self.fs.open_output_stream(self.remote_path(rel)) as out:
                out.write(f.read())

    def pull(self, rel: str) -> bool:
        """Copy a remote file or directory into the working copy; False when it does not exist."""
        if not self.remote:
            return os.path.exists(self.local(rel))
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self.remote_path(rel))
        if info.type == pafs.FileType.NotFound:
            return False
        dst = self.local(rel)
        if info.type == pafs.FileType.Directory:
            os.makedirs(dst, exist_ok=True)
            pafs.copy_files(self.remote_path(rel), dst, source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with self.fs.open_input_stream(self.remote_path(rel)) as f, open(dst, "wb") as out:
                out.write(f.read())
        return True

    def ray_storage(self) -> dict:
        """RunConfig arguments that put Ray Train's checkpoints under ``checkpoints/``."""
        if not self.remote:
            return {"storage_path": os.path.join(self.local(), "checkpoints")}
        return {"storage_path": self.remote_path("checkpoints"), "storage_filesystem": self.fs}

    def delete(self, rel: str) -> None:
        if not self.remote:
            shutil.rmtree(self.local(rel), ignore_errors=True)
            return
        import pyarrow.fs as pafs

        if self.fs.get_file_info(self.remote_path(rel)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.remote_path(rel))


def latest_checkpoint_in(run: RunDir) -> tuple[str, dict] | None:
    """(path in the run's filesystem, state) of the complete checkpoint with the highest step."""
    if not run.remote:
        return latest_checkpoint(os.path.join(run.local(), "checkpoints"))
    import pyarrow.fs as pafs

    root = run.remote_path("checkpoints")
    infos = run.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    sizes = {i.path: i.size for i in infos if i.type == pafs.FileType.File}
    best = None
    for path in sizes:
        if not path.endswith("/" + STATE_FILE):
            continue
        d = path.rsplit("/", 1)[0]
        with run.fs.open_input_stream(path) as f:
            state = _complete_state(f.read(), lambda name, d=d: sizes.get(f"{d}/{name}"))
        if state is None:
            continue
        if best is None or state["step"] > best[1]["step"]:
            best = (d, state)
    return best


def fetch_checkpoint(run: RunDir, path: str) -> str:
    """A local directory holding the checkpoint at ``path`` (downloaded when remote)."""
    if not run.remote:
        return path
    import pyarrow.fs as pafs

    dst = tempfile.mkdtemp(prefix="crawlsift-ckpt-")
    pafs.copy_files(path, dst, source_filesystem=run.fs, destination_filesystem=pafs.LocalFileSystem())
    return dst
