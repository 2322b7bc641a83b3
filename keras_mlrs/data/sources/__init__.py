"""Where patches come from: one class per kind of BigEarthNet data on disk.

* ``v1`` (:class:`~.v1.V1Archive`): BigEarthNet-S2 v1.0, a folder per patch with 12 band
  GeoTIFFs and ``<patch>_labels_metadata.json``;
* ``v2`` (:class:`~.v2.V2Archive`): BigEarthNet v2.0 (reBEN), ``<tile>/<patch>/`` band
  GeoTIFFs and ``metadata.parquet``;
* ``official-tfrecord`` (:class:`~.official.OfficialTFRecords`): the TFRecords of the
  BigEarthNet authors' tools;
* ``prepared`` (:class:`keras_mlrs.data.shards.PreparedShards`): the shards written by
  :func:`keras_mlrs.data.prepare`.

A ``.tar``/``.tar.gz``/``.tar.bz2`` of a v1 or v2 folder is unpacked first
(:func:`unpack_if_tar`). Every source gives the batches of a split
(:meth:`Source.batches`); the raw archives (:class:`RawArchive`) also list their patches
and assign them to splits, which is what ``prepare`` reads.
"""

from pathlib import Path

from keras_mlrs.data.sources.base import (
    MAX_EXTRACT_GB,
    PatchRef,
    RawArchive,
    Source,
    describe_missing,
    first_recognising,
    tfrecord_files,
    unpack_if_tar,
)
from keras_mlrs.data.sources.official import OfficialTFRecords, write_official_tfrecord
from keras_mlrs.data.sources.v1 import V1Archive, sample_path
from keras_mlrs.data.sources.v2 import V2Archive
from keras_mlrs.errors import ArchiveError, choose

#: The raw archives, by format name, in the order they are recognised.
RAW_ARCHIVES: dict[str, type[RawArchive]] = {cls.format: cls for cls in (V2Archive, V1Archive)}


def open_archive(path, fmt: str | None = None, max_extract_gb: float = MAX_EXTRACT_GB, **options) -> RawArchive:
    """The raw archive at ``path`` (a tar is unpacked first, to at most ``max_extract_gb``)
    as a v1 or v2 archive, of format ``fmt`` or the one detected; ``options`` as for
    :class:`RawArchive`."""
    root = unpack_if_tar(Path(path), max_extract_gb)
    if fmt is not None:
        return RAW_ARCHIVES[choose("raw archive format", fmt, sorted(RAW_ARCHIVES))](root, **options)
    cls = first_recognising(root, RAW_ARCHIVES.values())
    if cls is not None:
        return cls(root, **options)
    if (root / "manifest.json").exists() or OfficialTFRecords.recognises(root):
        raise ArchiveError(f"{path} holds TFRecords, not a raw v1 or v2 archive of band files.")
    raise describe_missing(root)


__all__ = [
    "MAX_EXTRACT_GB", "RAW_ARCHIVES", "OfficialTFRecords", "PatchRef", "RawArchive", "Source", "V1Archive", "V2Archive",
    "describe_missing", "first_recognising", "open_archive", "sample_path", "tfrecord_files", "unpack_if_tar",
    "write_official_tfrecord",
]
