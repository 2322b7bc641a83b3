"""The adversarial probe of the hardening issue, rerunnable on demand: bad inputs over every
command, ``kill -9`` at random moments, and the leaks both leave.

    python tools/probe.py [--kills N] [--seed S] [--keep]

It prints three figures:

* bad inputs tried / handled in one line: each case must exit 1 with exactly one ``error:``
  line on stderr, no traceback, and the work folder unchanged (nothing half-written);
* faults injected / survived identical: ``mlrs train``, ``mlrs data prepare --workers 2`` and
  ``mlrs push --to`` are killed with SIGKILL at a random moment and rerun (``--resume`` for a
  run); the result must be bit-identical to an uninterrupted one (the weights of
  ``last.keras``; every shard's SHA-256; every exported file);
* leaks: temporary folders left in ``$TMPDIR`` (tar extractions, benchmark work), staging
  folders left in the outputs, and processes of the probe still alive afterwards.

It takes about ten minutes on two cores. Its work folder is removed at the end (``--keep``
keeps it). This is a development tool, not part of the package.
"""

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import header_only_tiff  # noqa: E402 - the tests' hostile TIFF, from the tests' helpers

MLRS = [sys.executable, "-c", "from keras_mlrs.cli.main import main; main()"]
TINY = ["--model-param", "width=0.25", "--model-param", "units=16"]


def mlrs(*args, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*MLRS, *map(str, args)], capture_output=True, encoding="utf-8", errors="replace",
                          timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"}, **kwargs)


def must(*args):
    done = mlrs(*args)
    if done.returncode != 0:
        raise SystemExit(f"probe set-up failed: mlrs {' '.join(map(str, args))}\n{done.stderr[-3000:]}")
    return done


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its size and modification time (only the existence of
    a run's lock file: a command that takes it writes its PID there, even when it then fails)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            if p.is_file() and p.name != ".keras-mlrs.lock" else None for p in sorted(folder.rglob("*"))}


def weights(model: Path) -> dict:
    """Every array of a .keras file's weights, by its HDF5 path."""
    with zipfile.ZipFile(model) as archive:
        content = archive.read("model.weights.h5")
    out = {}
    with h5py.File(io.BytesIO(content), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def hashes(folder: Path, pattern="*") -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob(pattern)) if p.is_file() and not p.name.startswith(".")}


def export_content(folder: Path) -> dict:
    """An export's files, by content: Keras writes the save time into metadata.json and Python
    object ids ("shared_object_id") into config.json, and the card lists their hashes, so
    those are compared without them."""
    import re

    out = hashes(folder)
    for name in ("config.json", "metadata.json", "README.md"):
        path = folder / name
        if path.is_file():
            text = re.sub(r'"shared_object_id": \d+', "", path.read_text())
            text = re.sub(r'"date_saved": "[^"]*"', "", text)
            text = re.sub(r"(config|metadata)\.json: [0-9a-f]{64}", "", text)
            out[name] = hashlib.sha256(text.encode()).hexdigest()
    return out


def tar_with(path: Path, members: list) -> Path:
    """A tar.gz of ``(name, bytes or None for a symlink to /etc/passwd, size claim)`` members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


def build(w: Path) -> dict:
    """The work folder's inputs: prepared shards, a finished run, and hostile files."""
    from keras_mlrs import data  # the sample's location only: no Keras

    sample = data.sample_path()
    patch = sorted(p for p in sample.iterdir() if p.is_dir())[0]
    must("data", "prepare", sample, "--out", w / "prepared", "--split", "random", "--workers", "1")
    must("train", "--data", w / "prepared", "--loss", "bce", "--epochs", "2", "--batch-size", "2", *TINY,
         "--run-dir", w / "run")
    (w / "afile").write_text("a file, not a folder")
    (w / "notzip.keras").write_text("not a zip")
    with zipfile.ZipFile(w / "run" / "last.keras") as model:
        members = {name: model.read(name) for name in model.namelist()}
    empty = io.BytesIO()
    h5py.File(empty, "w").close()
    for name, content in (("garbage-weights", b"x" * 4096), ("empty-weights", empty.getvalue()),
                          ("cut-weights", members["model.weights.h5"][:5000])):
        with zipfile.ZipFile(w / f"{name}.keras", "w") as model:
            for member, data_ in members.items():
                model.writestr(member, content if member == "model.weights.h5" else data_)
    (w / "folder-model").mkdir()
    for member, content in members.items():
        (w / "folder-model" / member).write_bytes(content[:len(content) // 3] if member.endswith(".h5") else content)
    for name, state in (("list-state", "[1, 2]"), ("garbage-state", "{not json")):
        shutil.copytree(w / "run", w / name)
        (w / name / "state.json").write_text(state)
    shutil.copytree(w / "run", w / "lost-checkpoint")
    state = w / "lost-checkpoint" / "state.json"
    state.write_text(state.read_text().replace('"finished": true', '"finished": false'))
    for epoch in (w / "lost-checkpoint" / "checkpoints").glob("epoch-*.keras"):
        epoch.unlink()
    header_only_tiff(w / "huge.tif", 30000, 30000)
    header_only_tiff(w / "bands.tif", 120, 120, samples=500)
    header_only_tiff(w / "tiles.tif", 120, 120, tile=60000)
    (w / "text.tif").write_text("not a tiff")
    import tifffile  # the probe's hostile GeoTIFFs

    stacked = data.read_patch(patch).stacked()
    tifffile.imwrite(w / "reflectance.tif", (stacked / 10000.0).astype("float32"), photometric="minisblack")
    tifffile.imwrite(w / "nan.tif", np.where(stacked > 500, np.nan, stacked).astype("float32"),
                     photometric="minisblack")
    tifffile.imwrite(w / "three-bands.tif", stacked[..., :3], photometric="minisblack")
    tar_with(w / "escape.tar.gz", [("../../escaped.txt", b"out")])
    tar_with(w / "link.tar.gz", [("patch/link", None)])
    tar_with(w / "absolute.tar.gz", [("/tmp/mlrs-probe-absolute.txt", b"out")])
    tar_with(w / "big.tar.gz", [("patch/B01.tif", bytes(3 * 2**20))])  # 3 MB of zeros, a few kB packed
    (w / "cut.tar.gz").write_bytes((w / "escape.tar.gz").read_bytes()[:20])
    (w / "bad.toml").write_text("loss = \n")
    (w / "types.toml").write_text('loss = "bce"\nloss_params = 3\n')
    (w / "data7.toml").write_text("data = 7\n")
    (w / "unknown.toml").write_text('losss = "bce"\n')
    shutil.copytree(w / "prepared", w / "corrupt-shards")
    shard = sorted((w / "corrupt-shards").glob("*.tfrecord"))[0]
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF
    shard.write_bytes(bytes(content))
    (w / "foreign").mkdir()
    (w / "foreign" / "config.json").write_text("{}")
    (w / "foreign" / "thesis.tex").write_text("the user's own work")
    (w / "report-foreign").mkdir()
    (w / "report-foreign" / "report.json").write_text("{}")
    (w / "report-foreign" / "notes.md").write_text("the user's own notes")
    shutil.copytree(w / "run", w / "foreign-calibration")  # thresholds that name other weights
    must("calibrate", w / "foreign-calibration")
    calibration = w / "foreign-calibration" / "calibration.json"
    record = json.loads(calibration.read_text())
    record["model"]["weights_sha256"] = "0" * 64
    calibration.write_text(json.dumps(record))
    shutil.copytree(w / "run", w / "garbage-calibration")
    (w / "garbage-calibration" / "calibration.json").write_text('{"format": 1, "thresholds": ')
    bad_name = os.fsencode(w) + b"/caf\xe9"
    os.makedirs(bad_name)
    return {"w": w, "sample": sample, "patch": patch, "prepared": w / "prepared", "run": w / "run",
            "bad": os.fsdecode(bad_name)}


#: the bad inputs: a command line with {placeholders}
CASES = [
    # paths that do not exist, or are the wrong kind of thing
    "evaluate {w}/nowhere", "predict {w}/nowhere {patch}", "predict {run} {w}/nowhere.tif",
    "explain {w}/nowhere.tif --model {run} -c 0", "explain {patch} --model {w}/nowhere -c 0",
    "compare {w}/nowhere", "compare {prepared}", "push {w}/nowhere --repo o/m --to {w}/export",
    "push {prepared} --repo o/m --to {w}/export", "train --data {w}/nowhere --run-dir {w}/r",
    "train --resume {w}/nowhere", "train --resume {prepared}", "data prepare {w}/nowhere --out {w}/p",
    "data verify {w}/nowhere", "data verify {run}", "zoo build --data {w}/nowhere --out {w}/z",
    "train --data {bad} --run-dir {w}/r", "train --data {prepared} --run-dir {bad}/r",
    "evaluate {bad}", "explain {bad} --model {run} -c 0",
    # outputs blocked by a file, or holding a user's own files
    "train --data {prepared} --run-dir {w}/afile/run", "data prepare {sample} --out {w}/afile --split random",
    "evaluate {run} --out {w}/afile", "evaluate {run} --json {w}/afile/report.json",
    "explain {patch} --model {run} -c 0 --out {w}/afile", "compare {run} --out {w}/afile",
    "zoo build --data {prepared} --out {w}/afile --losses bce --epochs 1",
    "push {run} --repo o/m --to {w}/afile", "push {run} --repo o/m --to {w}/foreign",
    "compare {run} --out {w}/report-foreign",
    "data prepare {sample} --out {run} --split random", "train --data {prepared} --run-dir {run}",
    # damaged models and runs
    "evaluate {w}/notzip.keras", "evaluate {w}/garbage-weights.keras", "evaluate {w}/empty-weights.keras",
    "evaluate {w}/cut-weights.keras", "evaluate {w}/folder-model", "predict {w}/garbage-weights.keras {patch}",
    "explain {patch} --model {w}/empty-weights.keras -c 0", "train --resume {w}/list-state",
    "train --resume {w}/garbage-state", "train --resume {w}/lost-checkpoint", "train --resume {run}",
    "evaluate {run} --checkpoint epoch-7", "evaluate {run} --checkpoint first", "evaluate {w}/notzip.keras --checkpoint best",
    # hostile patches and archives
    "predict {run} {w}/huge.tif", "predict {run} {w}/bands.tif", "predict {run} {w}/tiles.tif",
    "predict {run} {w}/text.tif", "predict {run} {w}/reflectance.tif", "predict {run} {w}/nan.tif",
    "predict {run} {w}/three-bands.tif", "explain {w}/huge.tif --model {run} -c 0",
    "data prepare {w}/escape.tar.gz --out {w}/p", "data prepare {w}/link.tar.gz --out {w}/p",
    "data prepare {w}/absolute.tar.gz --out {w}/p", "data prepare {w}/cut.tar.gz --out {w}/p",
    "data prepare {w}/big.tar.gz --out {w}/p --max-extract-gb 0.001",
    "data verify {w}/corrupt-shards",
    # bad names and values
    "train --data {prepared} --loss focall --run-dir {w}/r", "train --data {prepared} --model kbranchh --run-dir {w}/r",
    "train --data {prepared} --loss focal --loss-param gamma=abc --run-dir {w}/r",
    "train --data {prepared} --loss focal --loss-param gama=2 --run-dir {w}/r",
    "train --data {prepared} --loss focal --loss-param gamma --run-dir {w}/r",
    "train --data {prepared} --model-param width=0 --run-dir {w}/r",
    "train --data {prepared} --model-param units=-3 --run-dir {w}/r",
    "train --data {prepared} --model-param depth=3 --run-dir {w}/r",
    "train --data {prepared} --optimizer adamm --run-dir {w}/r",
    "train --data {prepared} --lr -1 --run-dir {w}/r", "train --data {prepared} --distribute everywhere --run-dir {w}/r",
    "train --data {sample} --split sideways --run-dir {w}/r", "train --data {sample} --split random --fractions 0.5,0.6,0.2 --run-dir {w}/r",
    "train --data {sample} --split random --fractions a,b,c --run-dir {w}/r",
    "train --config {w}/bad.toml --run-dir {w}/r", "train --config {w}/types.toml --data {prepared} --run-dir {w}/r",
    "train --config {w}/data7.toml --run-dir {w}/r", "train --config {w}/unknown.toml --data {prepared} --run-dir {w}/r",
    "evaluate {run} --decision sigmod", "evaluate {run} --decision sparsemax_support --threshold 0.3",
    "evaluate {run} --split tset", "predict {run} {patch} --decision logitt",
    "explain {patch} --model {run} --class Urbn", "explain {patch} --model {run} --class 19",
    "explain {patch} --model {run} --class -1", "explain {patch} --model {run} -c 0 --preset lrp.epsilonn",
    "explain {patch} --model {run} -c 0 --param epsilon=abc", "explain {patch} --model {run} -c 0 --param epsilom=0.1",
    "explain {patch} --model {run} -c 0 --bands rgbn", "explain {patch} --model {run} -c 0 --engine captum",
    "compare {run} --bands nir", "compare {run} --average median", "compare {run} --preset lrp.zz",
    "data prepare {sample} --out {w}/p --format v3", "data prepare {sample} --out {w}/p --split sideways",
    "data prepare {sample} --out {w}/p --split random --fractions 1,1,1",
    "push {run} --repo not-a-repo --to {w}/export", "push {run} --repo o/m --to {w}/export --split tset",
    "pull o/not-cached", "zoo build --data {prepared} --out {w}/z --losses focall --epochs 1",
    # calibrated thresholds: no validation split, the test split, unknown objectives, none, another model's, damaged
    "calibrate {run} --data {sample}", "calibrate {run} --split test", "calibrate {run} --objective macro-f1",
    "calibrate {prepared}", "calibrate {w}/lost-checkpoint", "evaluate {run} --thresholds calibrated",
    "evaluate {w}/foreign-calibration --thresholds calibrated", "evaluate {w}/garbage-calibration --thresholds calibrated",
    "evaluate {run} --thresholds calibrated --decision logit", "evaluate {run} --decision calibrated",
    "predict {run} {patch} --thresholds calibratd", "predict {w}/foreign-calibration {patch} --thresholds calibrated",
    "explain {patch} --model {w}/foreign-calibration --all-predicted --thresholds calibrated",
    # measuring explanations and loss landscapes: bad regions, steps, baselines, classes, splits, grids, non-runs
    "explain-quality {run} --region 7", "explain-quality {run} --steps 901", "explain-quality {run} --baseline zero",
    "explain-quality {run} --classes everything", "explain-quality {run} --split tset", "explain-quality {prepared}",
    "explain-quality {run} --preset lrp.zz", "explain-quality {run} --param epsilom=0.1",
    "landscape {run} --points 4", "landscape {run} --directions 3", "landscape {run} --split tset",
    "landscape {run} --span 0", "landscape {prepared}", "compare {run} --landscape-points 4",
]


def bad_inputs(paths: dict) -> tuple[int, list]:
    """Each case: exit 1, one ``error:`` line, no traceback, nothing written."""
    failures = []
    env_offline = {"HF_HUB_OFFLINE": "1"}
    os.environ.update(env_offline)
    for case in CASES:
        before = snapshot(paths["w"])
        args = [a.format(**paths) for a in case.split()]
        done = mlrs(*args, timeout=300)
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
        problems = []
        if done.returncode != 1:
            problems.append(f"exit {done.returncode}")
        if "Traceback" in done.stderr + done.stdout:
            problems.append("traceback")
        if len(lines) != 1 or not lines[0].startswith("error:"):
            problems.append(f"{len(lines)} lines on stderr")
        if snapshot(paths["w"]) != before:
            problems.append("the work folder changed")
        print(f"  {'ok  ' if not problems else 'FAIL'} mlrs {case}" + (f": {', '.join(problems)}" if problems else "")
              + (f"\n       {lines[0][:160]}" if lines else ""), flush=True)
        if problems:
            failures.append((case, problems, done.stderr[-600:]))
    return len(CASES), failures


def killed_and_rerun(args: list, kill_after: float, rerun: list) -> str:
    """Runs mlrs ``args``, SIGKILLs it (and only it: workers must exit by themselves) after
    ``kill_after`` seconds unless it finished, then runs ``rerun`` to completion; returns how it went."""
    proc = subprocess.Popen([*MLRS, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=kill_after)
        killed = "finished before the kill"
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = f"killed after {kill_after:.1f} s"
    done = mlrs(*rerun)
    if done.returncode != 0:
        return f"{killed}; the rerun failed: {done.stderr.strip().splitlines()[-1:]}"
    return killed


def faults(paths: dict, kills: int, rng: random.Random) -> tuple[int, list]:
    w, failures, tried = paths["w"], [], 0

    def record(command: str, how: str, same: bool, what: str) -> int:
        """Report one injected fault; 1, for the count."""
        print(f"  {'ok  ' if same else 'FAIL'} {command} {how}: {what} {'identical' if same else 'differs'}", flush=True)
        if not same:
            failures.append((command, how))
        return 1

    train = ["train", "--data", paths["prepared"], "--loss", "bce", "--epochs", "4", "--batch-size", "1", *TINY]
    took = {}  # how long each uninterrupted command takes: the kills fall within it
    for name, args in (("train", [*train, "--run-dir", w / "reference-run"]),
                       ("prepare", ["data", "prepare", paths["sample"], "--out", w / "reference-shards", "--split",
                                    "random", "--shard-size", "1", "--workers", "2"]),
                       ("push", ["push", paths["run"], "--repo", "o/m", "--to", w / "reference-export"])):
        start = time.time()
        must(*args)
        took[name] = time.time() - start
    for i in range(kills):
        run = w / f"killed-run-{i}"
        how = killed_and_rerun([*train, "--run-dir", run], rng.uniform(0.3, 0.95) * took["train"],
                               ["train", "--resume", run])
        if "rerun failed" in how and (run / "config.toml").exists() is False:  # killed before the run existed
            how += "; " + ("rerun from scratch ok" if mlrs(*train, "--run-dir", run, "--overwrite").returncode == 0
                           else "the fresh run failed")
        same = (run / "last.keras").is_file() and same_weights(run / "last.keras", w / "reference-run" / "last.keras")
        tried += record("train", how, same, "last.keras")
    for i in range(kills):
        out = w / f"killed-shards-{i}"
        prepare = ["data", "prepare", paths["sample"], "--out", out, "--split", "random", "--shard-size", "1",
                   "--workers", "2"]
        how = killed_and_rerun(prepare, rng.uniform(0.3, 0.95) * took["prepare"], prepare)
        tried += record("data prepare", how, hashes(out) == hashes(w / "reference-shards"), "shards")
    for i in range(max(1, kills // 2)):
        out = w / f"killed-export-{i}"
        push = ["push", paths["run"], "--repo", "o/m", "--to", out]
        how = killed_and_rerun(push, rng.uniform(0.3, 0.95) * took["push"], push)
        tried += record("push --to", how, export_content(out) == export_content(w / "reference-export"), "export")
    return tried, failures


def leaks(paths: dict, tmp_before: set) -> list:
    found = [f"$TMPDIR/{name}" for name in sorted(set(os.listdir(tempfile.gettempdir())) - tmp_before)
             if name.startswith("mlrs")]
    found += [str(p) for p in paths["w"].rglob(".*") if ".staging" in p.name or p.name.endswith(".tmp")
              or p.name.startswith(".repo.")]
    marker = str(paths["w"])
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"process {pid}: {cmdline[:120]}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=4, help="Kills per command (train, prepare; push gets half).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    options = parser.parse_args()
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    w = Path(tempfile.mkdtemp(prefix="probe-work-"))
    start = time.time()
    try:
        print(f"Work folder: {w}", flush=True)
        paths = build(w)
        print("Bad inputs:", flush=True)
        tried, failed = bad_inputs(paths)
        print("Faults:", flush=True)
        injected, broken = faults(paths, options.kills, random.Random(options.seed))
        time.sleep(2)  # workers of a killed prepare have a moment to notice
        found = leaks(paths, tmp_before)
    finally:
        if not options.keep:
            shutil.rmtree(w, ignore_errors=True)
    print(f"\nbad inputs tried / handled in one line: {tried} / {tried - len(failed)}")
    print(f"faults injected / survived identical: {injected} / {injected - len(broken)}")
    print(f"leaks found: {len(found)}" + "".join(f"\n  {leak}" for leak in found))
    print(f"({time.time() - start:.0f} s)")
    for case, problems, stderr in failed:
        print(f"\nFAILED mlrs {case}: {', '.join(problems)}\n{stderr}")
    sys.exit(1 if failed or broken or found else 0)


if __name__ == "__main__":
    main()
