"""``prepare``: a raw BigEarthNet archive (v1.0 or v2.0) to shards of our format
(:mod:`keras_mlrs.data.shards.format`) plus ``manifest.json``.

Writing is atomic and resumable: a shard is written under a temporary name and renamed when
complete, the plan (which patches go to which shard) is fixed up front in ``plan.json``, and
a rerun keeps the shards that exist and match what their run recorded (size and SHA-256),
rewriting any other. A killed run, run again, ends with the same shards and checksums;
worker processes exit when the process that started them dies.
"""

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES, GROUP_SIZES, GROUPS, NUM_CLASSES, SPLITS
from keras_mlrs.data.patch import read_patch_folder
from keras_mlrs.data.shards.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    RECORD_BYTES,
    encode_record,
    frame_record,
    sha256,
    shard_problem,
)
from keras_mlrs.data.sources import MAX_EXTRACT_GB, PatchRef, open_archive
from keras_mlrs.errors import MlrsError, PatchError, PrepareError
from keras_mlrs.files import atomic_write_text, folder_lock, holds_anything


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its file name and the patches that go into it, in order."""

    split: str
    file: str
    patches: tuple[PatchRef, ...]


def write_shard(job: ShardJob, out: Path, strict: bool = False) -> dict:
    """Write one shard (or recognise it as already written). Returns its manifest entry:
    file, sha256, records, class counts and the patches skipped (name -> reason)."""
    final = out / job.file
    if final.exists():  # written by an earlier run: reused only when it is what that run recorded
        try:
            meta = json.loads((out / ".shards" / f"{job.file}.json").read_text())
        except (OSError, ValueError):
            meta = None
        if meta is not None and shard_problem(final, meta) is None:
            return meta
        final.unlink()
    skipped, counts, names = {}, np.zeros(NUM_CLASSES, "int64"), []
    tmp = out / f".{job.file}.tmp-{os.getpid()}"
    with open(tmp, "wb") as writer:
        for ref in job.patches:
            try:
                patch = read_patch_folder(ref.folder, labels=ref.labels)
                if patch.labels is None:
                    raise PatchError(f"{ref.name}: no labels (no labels_metadata.json)")
                if not patch.labels.any():
                    raise PatchError(f"{ref.name}: no BigEarthNet-19 label")
                record = encode_record(patch.groups, patch.labels, patch.name)
            except MlrsError as err:
                if strict:
                    tmp.unlink(missing_ok=True)
                    raise PrepareError(f"patch {ref.name}: {err} (`strict=True` stops at the first bad patch)") from None
                skipped[ref.name] = str(err)
                continue
            writer.write(frame_record(record))
            counts += patch.labels.astype("int64")
            names.append(patch.name)
    meta = {
        "file": job.file, "split": job.split, "sha256": sha256(tmp), "records": len(names),
        "class_counts": counts.tolist(), "skipped": skipped,
    }
    atomic_write_text(out / ".shards" / f"{job.file}.json", json.dumps(meta))
    os.replace(tmp, final)
    return meta


def _plan(refs, assignment, shard_size, seed):
    jobs = []
    for split in SPLITS:
        members = [r for r in refs if assignment.get(r.name) == split]
        if not members:
            continue
        order = np.random.default_rng(seed).permutation(len(members))  # mix tiles and seasons
        members = [members[i] for i in order]
        n = max(1, -(-len(members) // shard_size))
        for i in range(n):
            chunk = tuple(members[i * shard_size : (i + 1) * shard_size])
            jobs.append(ShardJob(split, f"{split}-{i:05d}-of-{n:05d}.tfrecord", chunk))
    return jobs


def prepare(
    archive,
    out,
    fmt: str | None = None,
    split: str = "official",
    seed: int = 0,
    fractions=(0.6, 0.2, 0.2),
    shard_size: int = 512,
    workers: int | None = None,
    strict: bool = False,
    overwrite: bool = False,
    include_snow_cloud: bool = False,
    progress=None,
    max_extract_gb: float = MAX_EXTRACT_GB,
) -> dict:
    """Turn a BigEarthNet archive into shards of our format plus ``manifest.json``.

    Args:
        archive: a v1.0 or v2.0 folder (or a tar of one).
        out: the output folder; a rerun with the same arguments resumes.
        fmt: ``"v1"`` or ``"v2"``; detected when None.
        split: ``"official"`` (v1: the official lists; v2: its metadata) or ``"random"``.
        seed: of the random split and of the shard order.
        fractions: train, validation and test fractions of the random split.
        shard_size: patches per shard.
        workers: processes writing shards in parallel (default: all cores for large archives).
        strict: abort at the first bad patch instead of skipping and listing it.
        overwrite: replace an output folder that holds a different dataset.
        include_snow_cloud: keep the patches the official setup removes.
        progress: optional callable ``(patches_done, patches_total)``.
        max_extract_gb: the most a tar ``archive`` may expand to (its extraction is
            temporary, removed when the process exits).

    Returns:
        The manifest (also written to ``out/manifest.json``).
    """
    source = open_archive(archive, fmt, max_extract_gb, scheme=split, seed=seed, fractions=fractions,
                          include_snow_cloud=include_snow_cloud)
    refs = source.listing()[0]
    if not refs:
        raise PrepareError(f"{archive} holds no patch.")
    assignment, skipped = source.assignment()
    jobs = _plan(refs, assignment, shard_size, seed)
    if not jobs:
        raise PrepareError(
            f"none of the {len(refs)} patches of {archive} falls in a split under the '{split}' scheme; "
            "try `split='random'`."
        )

    out = Path(out)
    plan = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "source": str(Path(archive).resolve()),
        "source_format": source.format,
        "split_scheme": source.split_scheme,
        "shards": {j.file: [r.name for r in j.patches] for j in jobs},
    }
    created = not out.exists() or (out.is_dir() and not holds_anything(out))
    _claim_output(out, plan, overwrite)
    try:
        with folder_lock(out, "prepare"):  # a second prepare into `out` must not remove this one's shards
            _start_writing(out, plan)
            return _write(out, plan, jobs, skipped, workers, strict, progress, archive)
    except PrepareError:
        if created:  # nothing usable came of it: leave no folder that looks like a start
            shutil.rmtree(out, ignore_errors=True)
        raise


def _write(out: Path, plan: dict, jobs, skipped, workers, strict, progress, archive) -> dict:
    total = sum(len(j.patches) for j in jobs)
    if workers is None:  # a process pool only pays off past its start-up
        workers = (os.cpu_count() or 1) if total >= 2000 else 1
    workers = max(1, min(workers, len(jobs)))
    done, results = 0, []
    if workers == 1:
        finished = ((job, write_shard(job, out, strict)) for job in jobs)
        for job, result in finished:
            results.append(result)
            done += len(job.patches)
            if progress:
                progress(done, total)
    else:
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_exit_with_parent,
                                    initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(write_shard, job, out, strict): job for job in jobs}
            for future in cf.as_completed(futures):
                results.append(future.result())
                done += len(futures[future].patches)
                if progress:
                    progress(done, total)
    manifest = _manifest(plan, results, skipped)
    if not any(entry["records"] for entry in manifest["splits"].values()):
        name, reason = next(iter(manifest["skipped"].items()), ("?", "?"))
        raise PrepareError(f"every patch of {archive} was skipped ({len(manifest['skipped'])} in all, e.g. {name}: "
                           f"{reason}); nothing was prepared.")
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def _exit_with_parent(parent: int) -> None:
    """A worker's initializer: exit as soon as the process that started the pool is gone
    (a parent killed with SIGKILL cannot stop its workers; they would write on, orphaned)."""

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _claim_output(out: Path, plan: dict, overwrite: bool):
    plan_file = out / "plan.json"
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out} is a file; give a folder for the shards.")
    if out.exists() and holds_anything(out):
        existing = json.loads(plan_file.read_text()) if plan_file.exists() else None
        if existing is None:  # never delete a folder that keras-mlrs did not write
            raise PrepareError(f"{out} already holds other files; choose an empty or new `out` folder.")
        if existing != plan:
            if not overwrite:
                raise PrepareError(
                    f"{out} already holds a different dataset; choose another `out` or pass `overwrite=True`."
                )
            with folder_lock(out, "prepare"):  # a dataset another process is writing is never replaced
                pass
            shutil.rmtree(out)


def _start_writing(out: Path, plan: dict):
    plan_file = out / "plan.json"
    for stale in out.glob(".*.tmp-*"):  # shards of a killed run, never renamed
        stale.unlink()
    if not plan_file.exists():
        atomic_write_text(plan_file, json.dumps(plan))
    (out / "manifest.json").unlink(missing_ok=True)  # rewritten when every shard is done


def _manifest(plan, results, skipped):
    results = sorted(results, key=lambda r: r["file"])
    all_skipped = dict(skipped)
    for r in results:
        all_skipped.update(r["skipped"])
    splits = {}
    for r in results:
        entry = splits.setdefault(r["split"], {"records": 0, "class_counts": [0] * NUM_CLASSES, "shards": []})
        entry["records"] += r["records"]
        entry["class_counts"] = [a + b for a, b in zip(entry["class_counts"], r["class_counts"])]
        entry["shards"].append({"file": r["file"], "sha256": r["sha256"], "records": r["records"]})
    for entry in splits.values():
        entry["class_counts"] = dict(zip(CLASS_NAMES, entry["class_counts"]))
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "source": plan["source"],
        "source_format": plan["source_format"],
        "split_scheme": plan["split_scheme"],
        "nomenclature": {"name": "BigEarthNet-19", "classes": list(CLASS_NAMES)},
        "bands": {g: {"bands": list(b), "size": GROUP_SIZES[g], "dtype": "uint16"} for g, b in GROUPS.items()},
        "record_bytes": RECORD_BYTES,
        "splits": splits,
        "skipped": dict(sorted(all_skipped.items())),
    }
