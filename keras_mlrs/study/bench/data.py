"""``mlrs bench data``: preparing and loading BigEarthNet data, ours against the baselines."""

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from keras_mlrs.bigearthnet import GROUPS
from keras_mlrs.data import load, prepare
from keras_mlrs.data.patch import read_patch_folder
from keras_mlrs.data.shards.format import encode_record
from keras_mlrs.data.sources import open_archive, write_official_tfrecord
from keras_mlrs.study.bench.common import interleave, paired_ratio, replicate_sample, work_folder


def _rasterio_groups(folder: Path) -> dict:
    """The baseline reader: every band file opened with rasterio (GDAL), as torchgeo's
    BigEarthNet dataset reads them."""
    import rasterio  # the baseline's library, a development dependency

    groups = {}
    for group, bands in GROUPS.items():
        arrays = []
        for band in bands:
            with rasterio.open(folder / f"{folder.name}_{band}.tif") as src:
                arrays.append(src.read(1))
        groups[group] = np.stack(arrays, axis=-1)
    return groups


def loader_rate(path, batch_size: int, epochs: int = 1, limit: int | None = None, shuffle: bool = False,
                pipeline: str = "tf.data") -> float:
    """Patches/s of :func:`keras_mlrs.data.load` on the training split over ``epochs``
    passes, after one warm-up pass (files in the page cache, pipeline built). With
    ``limit``, only the first ``limit`` patches are read (for the slow raw-archive path);
    with ``shuffle``, records come in training order (seeded). The ``numpy`` pipeline is
    read as ``fit`` reads it: through Keras' PyDataset adapter and its reading threads."""
    ds = load(path, "train", batch_size=batch_size, shuffle=shuffle, seed=0 if shuffle else None,
              split_scheme="random", fractions=(1.0, 0.0, 0.0), pipeline=pipeline)
    if limit:
        ds = ds.take(max(1, limit // batch_size))

    def batches():
        if pipeline != "numpy":
            return iter(ds)
        # Keras' own reader of a PyDataset, as fit() uses it (no public name)
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        return PyDatasetAdapter(ds, shuffle=False).get_numpy_iterator()

    for _ in batches():
        pass
    n, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ in batches():
            n += int(x["b10m"].shape[0])
    return n / (time.perf_counter() - start)


def loader_rate_in_subprocess(path, batch_size, epochs=1, limit=None, shuffle=False, pipeline="tf.data") -> float:
    """:func:`loader_rate` in a fresh process: TensorFlow's generator dataset (the raw path)
    lowers glibc's M_TRIM_THRESHOLD for the whole process, after which every large batch
    allocation faults its pages in again and any loader measured later is slowed."""
    code = (
        "import sys; from keras_mlrs.study.bench.data import loader_rate; "
        f"print(loader_rate(sys.argv[1], {int(batch_size)}, {int(epochs)}, {limit!r}, {bool(shuffle)!r}, "
        f"{pipeline!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def peak_rss_of_prepare(archive, out) -> float:
    """Peak resident memory (MiB) of a separate process that runs prepare on one worker,
    from scratch (any earlier output is removed first, so nothing is resumed)."""
    shutil.rmtree(out, ignore_errors=True)
    code = (
        "import sys, resource; from keras_mlrs.data import prepare; "
        "prepare(sys.argv[1], sys.argv[2], split='random', workers=1); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out_text = subprocess.run([sys.executable, "-c", code, str(archive), str(out)], capture_output=True, text=True,
                              check=True).stdout
    return int(out_text.strip().splitlines()[-1]) / 1024


def bench_data(patches: int = 2000, batch_size: int = 256, rounds: int = 3, workdir=None,
               loader_rate=loader_rate_in_subprocess, peak_rss=peak_rss_of_prepare) -> dict:
    """Throughput of preparing and loading BigEarthNet data, measured side by side.

    Replicates the bundled sample to ``patches`` patches, then measures:

    * prepare, patches/s on one worker: our reader + encoder vs reading each band file
      with rasterio + the same encoder;
    * load, patches/s into batches (``loader_rate``): our shards vs the official int64
      TFRecord format vs reading the raw archive on the fly, in file order; and ours vs the
      official format shuffled as for training (ours exactly, the official format through
      the loader's shuffle buffer of 4,096 records); and our shards shuffled through the
      numpy pipeline (no TensorFlow, read as ``fit`` reads it) vs the tf.data pipeline;
    * peak memory of prepare (``peak_rss``) on the archive and on 4× the archive.

    Throughputs are medians over ``rounds``; ``ratios`` are medians of the per-round
    ratios (see :func:`~keras_mlrs.study.bench.common.paired_ratio`). The data are written
    to ``workdir`` (kept) or to a temporary folder removed at the end.
    """
    with work_folder(workdir, "mlrs-bench-data-") as work:
        archive = replicate_sample(work / "archive", patches)
        folders = sorted(p for p in archive.iterdir() if p.is_dir())
        results = {"patches": patches}

        # prepare: read + encode, one process, interleaved rounds
        subset = folders[: min(len(folders), 500)]

        def encoding(reader):
            return lambda: [encode_record(reader(f), np.zeros(19), f.name) for f in subset]

        times = interleave({"ours": encoding(lambda f: read_patch_folder(f).groups),
                            "rasterio": encoding(_rasterio_groups)}, rounds)
        rates = {k: [len(subset) / t for t in v] for k, v in times.items()}
        results["prepare_patches_per_s"] = {k: statistics.median(v) for k, v in rates.items()}
        ratios = {"prepare_vs_rasterio": paired_ratio(rates["ours"], rates["rasterio"])}

        # the three sources of the loader
        prepared = work / "prepared"
        if not (prepared / "manifest.json").exists():
            prepare(archive, prepared, split="random", fractions=(1.0, 0.0, 0.0), workers=1)
        official = work / "official"
        official.mkdir(exist_ok=True)
        if not (official / "train.tfrecord").exists():
            raw = open_archive(archive, scheme="random", fractions=(1.0, 0.0, 0.0))
            write_official_tfrecord(official / "train.tfrecord", (raw.read(ref) for ref in raw.refs("train")))

        # each measurement in a fresh process (see loader_rate_in_subprocess)
        times = {"ours": [], "official": [], "raw": [], "ours_shuffled": [], "official_shuffled": [],
                 "numpy_shuffled": []}
        for _ in range(rounds):
            times["ours"].append(loader_rate(prepared, batch_size, epochs=3))
            times["official"].append(loader_rate(official, batch_size))
            times["raw"].append(loader_rate(archive, batch_size, limit=4 * batch_size))
            times["ours_shuffled"].append(loader_rate(prepared, batch_size, epochs=3, shuffle=True))
            times["official_shuffled"].append(loader_rate(official, batch_size, shuffle=True))
            times["numpy_shuffled"].append(loader_rate(prepared, batch_size, epochs=3, shuffle=True, pipeline="numpy"))
        results["load_patches_per_s"] = {k: statistics.median(v) for k, v in times.items()}
        ratios["load_vs_official"] = paired_ratio(times["ours"], times["official"])
        ratios["load_vs_raw"] = paired_ratio(times["ours"], times["raw"])
        ratios["load_shuffled_vs_official_shuffled"] = paired_ratio(times["ours_shuffled"],
                                                                    times["official_shuffled"])
        ratios["numpy_vs_tf_data_shuffled"] = paired_ratio(times["numpy_shuffled"], times["ours_shuffled"])

        # memory of prepare, 1x and 4x the data
        big = replicate_sample(work / "archive4x", 4 * patches)
        memory = results["prepare_peak_rss_mib"] = {"1x": peak_rss(archive, work / "mem1"),
                                                    "4x": peak_rss(big, work / "mem4")}
        ratios["prepare_memory_4x_vs_1x"] = memory["4x"] / memory["1x"]
        results["ratios"] = ratios
    results["workdir"] = str(workdir) if workdir is not None else None
    return results
