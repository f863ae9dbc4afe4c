"""Shared fixtures: the real crawl data beside the repository, and one local Ray runtime."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CRAWLSIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
CRAWL = SHARED_DATA / "crawl"

sys.path.insert(0, str(ROOT))

# The object-storage test talks to a local S3 server (moto) that accepts any credentials; they
# must be in the environment before Ray starts so its workers inherit them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def crawl_dir() -> Path:
    # Real Common Crawl data is part of the test contract: a missing folder is a failure, not a skip.
    assert (CRAWL / "jsonl").is_dir() and (CRAWL / "warc").is_dir(), f"real crawl data not found at {CRAWL}"
    return CRAWL


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster (2 CPUs), shared by every test that runs the pipeline."""
    import ray

    from cluster.run import init_ray

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    init_ray(None)  # applies the DataContext settings on the running instance
    yield ray
    ray.shutdown()


@pytest.fixture
def s3_server():
    """moto's S3 on loopback with a bucket ``crawl``; yields the query string pyarrow's
    ``FileSystem.from_uri`` needs (``s3://crawl/path?<this>``)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="crawl")
    yield f"endpoint_override={endpoint}&scheme=http&region=us-east-1"
    server.stop()
