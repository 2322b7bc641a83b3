"""The base classes of the sources (:class:`Source`, :class:`RawArchive`) and what they share."""

from __future__ import annotations

import atexit
import lzma
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from keras_mlrs.bigearthnet import GROUP_SIZES, GROUPS, NUM_CLASSES, split_name, to_multi_hot
from keras_mlrs.data.patch import Patch, is_patch_folder, read_patch_folder, read_v1_labels
from keras_mlrs.data.splits import SCHEMES, assign_splits, describe, parse_fractions
from keras_mlrs.errors import ArchiveError, MlrsError, choose, printable


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8, kept by the file system as surrogates
        return False
    return True


@dataclass(frozen=True)
class PatchRef:
    """Where one patch of a raw archive lives, and what the archive says about it."""

    name: str
    folder: Path
    labels: tuple[str, ...] | None = None  # v2: from metadata.parquet; v1: read from the JSON
    split: str | None = None  # v2: from metadata.parquet


class Source:
    """BigEarthNet data on disk that gives ``(band groups, multi-hot labels)`` batches per split."""

    #: the format's name (see the module docstring)
    format: ClassVar[str] = ""

    def __init__(self, path):
        self.path = Path(path)

    @staticmethod
    def recognises(path: Path) -> bool:
        """Whether ``path`` holds data of this source's format."""
        raise NotImplementedError

    @property
    def split_scheme(self) -> str:
        """How the patches are split, in words."""
        raise NotImplementedError

    def count(self, split: str) -> int | None:
        """Patches in ``split``; None when only reading every record would tell."""
        return None

    def class_counts(self, split: str) -> list[int] | None:
        """Patches per class in ``split`` (nomenclature order); None when only reading every
        record would tell."""
        return None

    def names(self, split: str) -> list[str] | None:
        """The names of the patches of ``split``, in the order of unshuffled batches; None
        when only reading every record would tell."""
        return None

    def patch(self, split: str, name: str) -> Patch | None:
        """The patch ``name`` of ``split``, with its labels; None when this source cannot read
        one patch alone."""
        return None

    def batches(self, split: str, batch_size: int, shuffle: bool = False, seed: int | None = None,
                shuffle_buffer: int = 4096, cache: bool = False, repeat: bool = False,
                drop_remainder: bool = False, shard: tuple[int, int] | None = None, reshuffle: bool = True):
        """A ``tf.data.Dataset`` of ``({"b10m", "b20m", "b60m"} uint16, float32 multi-hot)``
        batches of ``split`` (see :func:`keras_mlrs.data.load` for the arguments)."""
        raise NotImplementedError


def batch_records(ds, batch_size, shuffle, seed, shuffle_buffer, cache, repeat, drop_remainder, parse=None,
                  reshuffle=True):
    """Batches of a dataset of single records, shuffled through a buffer of
    ``shuffle_buffer`` records (anew on each pass with ``reshuffle``), each batch passed
    through ``parse`` when given."""
    import tensorflow as tf  # only tf.data pipelines need TensorFlow

    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=reshuffle)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    return ds if parse is None else ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


class RawArchive(Source):
    """A BigEarthNet archive of band GeoTIFFs (v1.0 or v2.0), split by ``scheme``:
    ``"official"`` (the archive's own split) or ``"random"`` (seeded by ``seed``, in
    ``fractions``). ``include_snow_cloud`` keeps the patches the official setup removes."""

    def __init__(self, path, scheme: str = "official", seed: int = 0, fractions=(0.6, 0.2, 0.2),
                 include_snow_cloud: bool = False):
        super().__init__(path)
        self.scheme = choose("split scheme", scheme, SCHEMES)
        self.seed, self.fractions = int(seed), parse_fractions(fractions)
        self.include_snow_cloud = include_snow_cloud
        self._listing = self._assignment = None

    def _list(self) -> tuple[list[PatchRef], dict[str, str]]:
        """The patches on disk, sorted by name, and those left out (name -> reason)."""
        raise NotImplementedError

    def _official(self, refs) -> tuple[dict[str, str], dict[str, str]]:
        """The official split of ``refs``: (name -> split, name -> why left out)."""
        return assign_splits([r.name for r in refs], "official")

    def listing(self) -> tuple[list[PatchRef], dict[str, str]]:
        """The patches of the archive, sorted by name, and those it leaves out (name -> reason)."""
        if self._listing is None:
            refs, skipped = self._list()
            kept = [r for r in refs if _is_utf8(r.name)]
            for ref in refs:
                if not _is_utf8(ref.name):  # a name no manifest, record or terminal can hold
                    skipped[printable(ref.name)] = "its name is not valid UTF-8; rename the folder (BigEarthNet's are ASCII)"
            self._listing = kept, skipped
        return self._listing

    def assignment(self) -> tuple[dict[str, str], dict[str, str]]:
        """Patch name -> split for the patches kept, and name -> reason for those left out."""
        if self._assignment is None:
            refs, skipped = self.listing()
            if self.scheme == "official":
                assignment, more = self._official(refs)
            else:
                assignment, more = assign_splits([r.name for r in refs], "random", self.seed, self.fractions,
                                                 exclude=not self.include_snow_cloud)
            self._assignment = assignment, {**skipped, **more}
        return self._assignment

    @property
    def split_scheme(self) -> str:
        return describe(self.scheme, self.seed, self.fractions)

    def refs(self, split: str) -> list[PatchRef]:
        """The patches of ``split``, sorted by name."""
        split, assignment = split_name(split), self.assignment()[0]
        return [r for r in self.listing()[0] if assignment.get(r.name) == split]

    def count(self, split: str) -> int:
        return len(self.refs(split))

    def names(self, split: str) -> list[str]:
        return [r.name for r in self.refs(split)]

    def patch(self, split: str, name: str) -> Patch | None:
        ref = next((r for r in self.refs(split) if r.name == name), None)
        return None if ref is None else self.read(ref)

    def class_counts(self, split: str) -> list[int]:
        """Patches per class in ``split``, from the labels alone (v2: metadata.parquet; v1:
        each patch's labels JSON); patches without labels count for no class."""
        counts = np.zeros(NUM_CLASSES, np.int64)
        for ref in self.refs(split):
            labels = ref.labels if ref.labels is not None else read_v1_labels(ref.folder, ref.name)
            if labels is not None:
                counts += to_multi_hot(labels).astype(np.int64)
        return counts.tolist()

    def read(self, ref: PatchRef) -> Patch:
        """One patch of the archive, with its labels."""
        return read_patch_folder(ref.folder, labels=ref.labels)

    def batches(self, split, batch_size, shuffle=False, seed=None, shuffle_buffer=4096, cache=False, repeat=False,
                drop_remainder=False, shard=None, reshuffle=True):
        import tensorflow as tf  # only tf.data pipelines need TensorFlow

        refs = self.refs(split)
        if not refs:
            raise MlrsError(f"{self.path} has no patch in the '{split}' split ({self.split_scheme}).")

        def generate():
            for ref in refs:
                patch = self.read(ref)
                yield {g: patch.groups[g] for g in GROUPS}, patch.labels

        signature = (
            {g: tf.TensorSpec((GROUP_SIZES[g], GROUP_SIZES[g], len(b)), tf.uint16) for g, b in GROUPS.items()},
            tf.TensorSpec((NUM_CLASSES,), tf.float32),
        )
        ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
        if shard is not None:
            ds = ds.shard(*shard)
        return batch_records(ds, batch_size, shuffle, seed, shuffle_buffer, cache, repeat, drop_remainder,
                             reshuffle=reshuffle)


#: The most a tar archive may expand to by default, in GB: the BigEarthNet-S2 v1.0 archive
#: holds about 66 GB of band files, v2.0 (reBEN) about 59 GB.
MAX_EXTRACT_GB = 150.0
#: Extractions of this process: (archive, size, mtime, bound) -> the extracted folder.
_EXTRACTED: dict = {}


def _remove_extractions():
    for folder in _EXTRACTED.values():
        shutil.rmtree(folder, ignore_errors=True)
    _EXTRACTED.clear()


atexit.register(_remove_extractions)


def unpack_if_tar(path, max_extract_gb: float = MAX_EXTRACT_GB) -> Path:
    """A tar archive is extracted to a temporary folder (returned); other paths come back as
    is. One extraction per archive serves the whole process and is removed when it exits;
    an extraction that fails (a member the safe ``data`` filter refuses, a damaged archive,
    more than ``max_extract_gb`` of content, a full disk, Ctrl-C) is removed at once and
    raises a one-line :class:`ArchiveError`."""
    path = Path(path)
    try:
        if not (path.is_file() and tarfile.is_tarfile(path)):
            return path
    except (EOFError, zlib.error, lzma.LZMAError) as err:  # a compressed stream cut short or damaged
        raise ArchiveError(f"{path} is a damaged tar archive ({type(err).__name__}: {err}); download it again.") from None
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, max_extract_gb)
    if key not in _EXTRACTED:
        out = Path(tempfile.mkdtemp(prefix="mlrs-archive-"))
        try:
            _extract(path, out, max_extract_gb)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        _EXTRACTED[key] = out
    out = _EXTRACTED[key]
    entries = list(out.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() and not is_patch_folder(entries[0]) else out


def _extract(path: Path, out: Path, max_extract_gb: float) -> None:
    """Extract ``path`` into ``out`` member by member (one pass over a compressed stream),
    refusing what the safe filter refuses and stopping before the content passes the bound
    or the free space."""
    bound, total = max_extract_gb * 1e9, 0
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                total += member.size
                if total > bound:
                    raise ArchiveError(f"{path} expands to more than {max_extract_gb:g} GB (the bound for a tar "
                                       "archive); extract it yourself and give the folder, or raise the bound "
                                       "(`max_extract_gb`).")
                free = shutil.disk_usage(out).free
                if member.size > free:
                    raise ArchiveError(f"{path}: no space left to extract {member.name} ({member.size / 1e9:.2f} GB, "
                                       f"{free / 1e9:.2f} GB free in {out.parent}); free space there or set TMPDIR "
                                       "to a larger disk.")
                try:
                    tar.extract(member, out, filter="data")
                except tarfile.FilterError as err:
                    raise ArchiveError(f"{path}: member '{member.name}' is refused as unsafe ({err}); "
                                       "the archive is not a BigEarthNet archive as published.") from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise ArchiveError(f"{path} is a damaged tar archive ({type(err).__name__}: {err}); download it again.") from None
    except OSError as err:  # a full disk, a read error; or bz2's "Invalid data stream", which has no errno
        if err.errno is None:
            raise ArchiveError(f"{path} is a damaged tar archive ({err}); download it again.") from None
        raise ArchiveError(f"cannot extract {path}: {err.strerror} ({err.filename or out}).") from None


def tfrecord_files(path: Path) -> list[Path]:
    """``path`` itself when it is a file, else the ``*.tfrecord*`` files in it, sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.tfrecord*") if p.is_file())


def first_recognising(path: Path, classes):
    """The first of ``classes`` (sources) that recognises the data at ``path``, or None."""
    return next((cls for cls in classes if cls.recognises(path)), None)


def describe_missing(path: Path) -> ArchiveError:
    """The error for a path that no source recognises."""
    if not path.exists():
        return ArchiveError(f"{path} does not exist; give the path of BigEarthNet data.")
    if path.is_dir():
        empty = not any(path.iterdir())
        return ArchiveError(
            f"{path} is not a BigEarthNet archive: no patch folders (<patch>_B02.tif ...), no metadata.parquet, "
            "no .tfrecord files" + (" (the folder is empty)." if empty else ".")
        )
    return ArchiveError(f"{path} is not a BigEarthNet archive folder, TFRecord file or tar archive.")
