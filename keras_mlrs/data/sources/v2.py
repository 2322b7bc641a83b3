"""BigEarthNet v2.0 (reBEN): ``<tile>/<patch_id>/<patch_id>_<band>.tif``, with
``metadata.parquet`` (``patch_id``, ``labels`` as BigEarthNet-19 names, ``split``) and
``metadata_for_patches_with_snow_cloud_or_shadow.parquet``; split by its metadata."""

from pathlib import Path

from keras_mlrs.bigearthnet import split_name
from keras_mlrs.data.sources.base import PatchRef, RawArchive
from keras_mlrs.errors import ArchiveError, MlrsError

METADATA = "metadata.parquet"
SNOW_CLOUD = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"


def _parquet(path: Path, columns) -> list[dict]:
    try:
        import pyarrow.parquet as pq  # only v2.0 archives need pyarrow
    except ImportError:
        raise ArchiveError("reading BigEarthNet v2.0 metadata needs pyarrow: pip install pyarrow") from None
    try:
        return pq.read_table(path, columns=list(columns)).to_pylist()
    except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
        raise ArchiveError(f"{path} is unreadable ({type(err).__name__}).") from None


class V2Archive(RawArchive):
    """A BigEarthNet v2.0 folder (see the module docstring)."""

    format = "v2"

    @staticmethod
    def recognises(path: Path) -> bool:
        return path.is_dir() and (path / METADATA).exists()

    def _list(self):
        rows = _parquet(self.path / METADATA, ("patch_id", "labels", "split"))
        skipped = {}
        if (self.path / SNOW_CLOUD).exists() and not self.include_snow_cloud:
            for row in _parquet(self.path / SNOW_CLOUD, ("patch_id",)):
                skipped[row["patch_id"]] = "seasonal snow, cloud or cloud shadow (v2 metadata)"
        folders = {p.name: p for tile in self.path.iterdir() if tile.is_dir() for p in tile.iterdir() if p.is_dir()}
        refs = []
        for row in rows:
            name = row["patch_id"]
            if name in skipped or name not in folders:  # a subset of the archive: only what is on disk
                continue
            try:
                split = split_name(row["split"])
            except MlrsError:
                split = None
            refs.append(PatchRef(name, folders[name], tuple(row["labels"] or ()), split))
        return sorted(refs, key=lambda r: r.name), skipped

    def _official(self, refs):
        assignment = {r.name: r.split for r in refs if r.split}
        return assignment, {r.name: "no split in metadata.parquet" for r in refs if not r.split}

    @property
    def split_scheme(self) -> str:
        return "official (v2 metadata.parquet)" if self.scheme == "official" else super().split_scheme
