"""BigEarthNet archives on disk: recognising their format and listing their patches.

Formats (``detect_format``):

* ``"v1"``: BigEarthNet-S2 v1.0, one folder per patch with 12 band GeoTIFFs and
  ``<patch>_labels_metadata.json`` (43 CORINE labels, mapped to BigEarthNet-19);
* ``"v2"``: BigEarthNet v2.0 (reBEN), ``<tile>/<patch_id>/<patch_id>_<band>.tif`` with
  ``metadata.parquet`` (``patch_id``, ``labels`` as 19-class names, ``split``) and
  ``metadata_for_patches_with_snow_cloud_or_shadow.parquet``;
* ``"official-tfrecord"``: the TFRecord files written by the BigEarthNet authors' tools
  (``B01`` ... ``B12``, ``B8A`` as int64 lists at native size,
  ``BigEarthNet-19_labels_multi_hot``, ``patch_name``);
* ``"prepared"``: a folder written by ``mlrs data prepare`` (has ``manifest.json``);
* a ``.tar``/``.tar.gz``/``.tar.bz2`` of a v1 or v2 folder is unpacked first.
"""

import functools
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from keras_mlrs.data.patches import BAND_FILE
from keras_mlrs.errors import MlrsError

FORMATS = ("v1", "v2", "official-tfrecord", "prepared")
V2_SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}


class ArchiveError(MlrsError):
    """A path that is not a BigEarthNet archive in a known format."""


@dataclass(frozen=True)
class PatchRef:
    """Where one patch of a raw archive lives, and what the archive says about it."""

    name: str
    folder: Path
    labels: tuple[str, ...] | None = None  # v2: from metadata.parquet; v1: read from the JSON
    split: str | None = None  # v2: from metadata.parquet


def _is_patch_folder(path: Path) -> bool:
    try:
        return path.is_dir() and any(BAND_FILE.match(p.name) for p in path.iterdir())
    except OSError:
        return False


def tfrecord_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.tfrecord*") if p.is_file())


def detect_format(path) -> str:
    """The format of the archive at ``path`` (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ArchiveError(f"{path} does not exist; give the path of a BigEarthNet archive.")
    if path.is_dir() and (path / "manifest.json").exists():
        return "prepared"
    if path.is_dir() and (path / "metadata.parquet").exists():
        return "v2"
    if tfrecord_files(path) and (path.is_file() or not any(_is_patch_folder(p) for p in path.iterdir())):
        return "official-tfrecord"
    if path.is_dir():
        for child in path.iterdir():
            if _is_patch_folder(child):
                return "v1"
        raise ArchiveError(
            f"{path} is not a BigEarthNet archive: no patch folders (<patch>_B02.tif ...), "
            "no metadata.parquet, no .tfrecord files"
            + (" (the folder is empty)." if not any(path.iterdir()) else ".")
        )
    raise ArchiveError(f"{path} is not a BigEarthNet archive folder, TFRecord file or tar archive.")


def unpack_if_tar(path) -> Path:
    """A tar archive is extracted to a temporary folder (returned); other paths come back as is."""
    path = Path(path)
    if not (path.is_file() and tarfile.is_tarfile(path)):
        return path
    out = Path(tempfile.mkdtemp(prefix="mlrs-archive-"))
    with tarfile.open(path) as tar:
        tar.extractall(out, filter="data")
    entries = [p for p in out.iterdir()]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() and not _is_patch_folder(entries[0]) else out


def list_v1(root: Path) -> list[PatchRef]:
    """The patch folders of a BigEarthNet-S2 v1.0 archive, sorted by name."""
    return sorted((PatchRef(p.name, p) for p in root.iterdir() if _is_patch_folder(p)), key=lambda r: r.name)


def list_v2(root: Path, include_snow_cloud: bool = False) -> tuple[list[PatchRef], dict[str, str]]:
    """The patches of a BigEarthNet v2.0 archive present on disk, with labels and split from
    ``metadata.parquet``; and those left out (name -> reason)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ArchiveError("reading BigEarthNet v2.0 metadata needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(root / "metadata.parquet", columns=["patch_id", "labels", "split"]).to_pylist()
    except Exception as err:  # pyarrow raises several kinds
        raise ArchiveError(f"{root / 'metadata.parquet'} is unreadable ({type(err).__name__}).") from None
    skipped = {}
    excluded_file = root / "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
    if excluded_file.exists() and not include_snow_cloud:
        for row in pq.read_table(excluded_file, columns=["patch_id"]).to_pylist():
            skipped[row["patch_id"]] = "seasonal snow, cloud or cloud shadow (v2 metadata)"
    folders = {p.name: p for tile in root.iterdir() if tile.is_dir() for p in tile.iterdir() if p.is_dir()}
    refs = []
    for row in table:
        name = row["patch_id"]
        if name in skipped:
            continue
        if name not in folders:
            continue  # a subset of the archive: only what is on disk
        split = V2_SPLITS.get(str(row["split"]).lower())
        refs.append(PatchRef(name, folders[name], tuple(row["labels"] or ()), split))
    return sorted(refs, key=lambda r: r.name), skipped


@functools.cache
def sample_path() -> Path:
    """The bundled 6-patch BigEarthNet-S2 v1.0 sample, unpacked once into the user cache
    (``$XDG_CACHE_HOME/keras-mlrs`` or ``~/.cache/keras-mlrs``)."""
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "keras-mlrs" / "sample"
    target = cache / "BigEarthNet-S2-Example"
    if not (target / ".complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
        with resources.as_file(
            resources.files("keras_mlrs.data").joinpath("sample", "BigEarthNet-S2-Example.tar.bz2")
        ) as tarball, tarfile.open(tarball) as tar:
            tar.extractall(staging, filter="data")
        (staging / "BigEarthNet-S2-Example" / ".complete").touch()
        try:
            (staging / "BigEarthNet-S2-Example").rename(target)
        except OSError:  # another process finished first
            pass
    return target
