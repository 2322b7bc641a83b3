"""prepare across processes: a prepare killed mid-way resumes to identical shards, and its
workers exit when it is killed. These tests spend their time starting processes that import
TensorFlow rather than computing with Keras; they run beside the TensorFlow suite, which
leaves the JAX half of tests/run.sh (where the other prepare tests run) shorter."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import replicate_patches
from keras_mlrs import data
from keras_mlrs.data.shards.format import sha256


def test_killed_prepare_resumes_to_identical_shards(sample, tmp_path):
    archive = replicate_patches(sample, tmp_path / "big", copies=24)  # 120 patches
    args = dict(split="random", seed=1, shard_size=4, workers=1)
    clean = data.prepare(archive, tmp_path / "clean", **args)

    out = tmp_path / "killed"
    code = (
        "import sys, time; from keras_mlrs.data import prepare; "
        "prepare(sys.argv[1], sys.argv[2], split='random', seed=1, shard_size=4, workers=1, "
        "progress=lambda d, t: time.sleep(0.15))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(archive), str(out)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.tfrecord"))) < 5:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done_before = len(list(out.glob("*.tfrecord")))
    assert 5 <= done_before < 30, done_before  # killed midway
    assert not (out / "manifest.json").exists()  # an unfinished run has no manifest

    resumed = data.prepare(archive, out, **args)
    assert not list(out.glob(".*.tmp-*"))
    for split, entry in clean["splits"].items():
        assert resumed["splits"][split]["shards"] == entry["shards"]
    for entry in resumed["splits"].values():
        for s in entry["shards"]:
            assert sha256(out / s["file"]) == s["sha256"]


def _children(pid: int) -> list[int]:
    """The worker processes (multiprocessing's spawned ones) whose parent is ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"multiprocessing" in cmdline:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # an exited worker may stay a zombie where PID 1 does not reap


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
def test_workers_exit_when_prepare_is_killed(sample, tmp_path):
    archive = replicate_patches(sample, tmp_path / "big", copies=8)  # 40 patches, 10 shards for 2 workers
    code = ("import sys; from keras_mlrs.data import prepare; "
            "prepare(sys.argv[1], sys.argv[2], split='random', shard_size=4, workers=2)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(archive), str(tmp_path / "out")])
    deadline, workers = time.time() + 60, []
    while time.time() < deadline and len(workers) < 2 and proc.poll() is None:
        workers = _children(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 2, "the workers did not start"
    proc.kill()  # SIGKILL: the parent cannot stop its workers itself
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.1)
    assert not any(_running(w) for w in workers), "orphaned workers lived on"
