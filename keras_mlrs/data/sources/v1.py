"""BigEarthNet-S2 v1.0: one folder per patch with its 12 band GeoTIFFs and
``<patch>_labels_metadata.json`` (43 CORINE labels, mapped to BigEarthNet-19); split by the
official BigEarthNet-19 lists. The bundled 6-patch sample is such an archive."""

import functools
import os
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

from keras_mlrs.data.patch import is_patch_folder
from keras_mlrs.data.sources.base import PatchRef, RawArchive


class V1Archive(RawArchive):
    """A BigEarthNet-S2 v1.0 folder (see the module docstring)."""

    format = "v1"

    @staticmethod
    def recognises(path: Path) -> bool:
        return path.is_dir() and any(is_patch_folder(child) for child in path.iterdir())

    def _list(self):
        refs = sorted((PatchRef(p.name, p) for p in self.path.iterdir() if is_patch_folder(p)), key=lambda r: r.name)
        return refs, {}


@functools.cache
def sample_path() -> Path:
    """The bundled 6-patch BigEarthNet-S2 v1.0 sample, unpacked once into the user cache
    (``$XDG_CACHE_HOME/keras-mlrs`` or ``~/.cache/keras-mlrs``)."""
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
