"""A small, fast reader for the GeoTIFFs of BigEarthNet.

BigEarthNet's band files are uncompressed, strip-organised, single-band uint16
GeoTIFFs of a few kilobytes. Opening each through GDAL costs more than the pixels;
this reader parses the TIFF header with ``struct`` and maps the strips straight into
a numpy array. Compressed or tiled files, and anything else this reader does not
handle, go to ``tifffile`` when it is installed.

Georeferencing (EPSG code and affine transform) is read from the GeoTIFF tags.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_mlrs.errors import TiffError
from keras_mlrs.files import atomic_output


@dataclass(frozen=True)
class GeoInfo:
    """Georeferencing of a raster: EPSG code (None when unknown) and the affine
    transform ``(x0, dx, 0, y0, 0, -dy)`` in GDAL's order (top-left corner origin)."""

    epsg: int | None
    transform: tuple[float, float, float, float, float, float]


_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 6: ("b", 1), 7: ("B", 1),
          8: ("h", 2), 9: ("i", 4), 11: ("f", 4), 12: ("d", 8), 16: ("Q", 8)}
_DTYPES = {(1, 8): "u1", (1, 16): "u2", (1, 32): "u4", (2, 8): "i1", (2, 16): "i2",
           (2, 32): "i4", (3, 32): "f4", (3, 64): "f8"}


def _tags(buf: bytes, path) -> tuple[str, dict]:
    if len(buf) < 8 or buf[:4] not in (b"II*\x00", b"MM\x00*"):
        raise TiffError(f"{path} is not a TIFF file (bad header); give a GeoTIFF band file.")
    bo = "<" if buf[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(bo + "I", buf, 4)
    try:
        (count,) = struct.unpack_from(bo + "H", buf, offset)
        tags = {}
        for i in range(count):
            tag, typ, n, value = struct.unpack_from(bo + "HHI4s", buf, offset + 2 + 12 * i)
            if typ not in _TYPES:
                continue
            code, size = _TYPES[typ]
            data = value if n * size <= 4 else buf[struct.unpack(bo + "I", value)[0]:][: n * size]
            if len(data) < n * size:
                raise struct.error("truncated tag")
            tags[tag] = data[: n * size].decode("latin-1").rstrip("\x00") if code == "s" else struct.unpack(
                bo + code * n, data[: n * size]
            )
    except struct.error:
        raise TiffError(f"{path} is a truncated or corrupt TIFF (unreadable header).") from None
    return bo, tags


def _geo(tags) -> GeoInfo | None:
    scale, tie = tags.get(33550), tags.get(33922)
    if not scale or not tie:
        return None
    i, j, _, x, y, _ = tie[:6]
    sx, sy = scale[0], scale[1]
    epsg = None
    keys = tags.get(34735)
    if keys:
        for k in range(4, len(keys) - 3, 4):
            key_id, location, _, value = keys[k : k + 4]
            if key_id in (3072, 2048) and location == 0 and value not in (0, 32767):
                epsg = int(value)
                if key_id == 3072:
                    break
    return GeoInfo(epsg, (x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy))


#: The largest tile side accepted when a size bound is given (tiles may exceed the image).
MAX_TILE = 1024


def read_tiff(path, max_side: int | None = None, max_bands: int | None = None) -> tuple[np.ndarray, GeoInfo | None]:
    """Read a TIFF: an array ``[height, width]`` (one band) or ``[height, width, bands]``,
    and its georeferencing (None when the file has none). With ``max_side`` and
    ``max_bands``, a header claiming more pixels, bands, bits or larger tiles than that is
    refused before any pixel memory is allocated."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as err:
        raise TiffError(f"cannot read {path}: {err.strerror}.") from None
    bo, tags = _tags(buf, path)
    try:
        width, height = tags[256][0], tags[257][0]
        bits = tags.get(258, (1,))
        samples = tags.get(277, (1,))[0]
        fmt = tags.get(339, (1,))[0]
        _check_size(path, tags, width, height, samples, bits, max_side, max_bands)
        simple = (
            tags.get(259, (1,))[0] == 1  # uncompressed
            and 273 in tags  # strips, not tiles
            and (samples == 1 or tags.get(284, (1,))[0] == 1)  # interleaved pixels
            and len(set(bits)) == 1
        )
        if simple and (fmt, bits[0]) in _DTYPES:
            dtype = np.dtype(_DTYPES[(fmt, bits[0])]).newbyteorder(bo)
            offsets, counts = tags[273], tags.get(279)
            nbytes = width * height * samples * dtype.itemsize
            if counts is None or sum(counts) < nbytes or max(o + c for o, c in zip(offsets, counts)) > len(buf):
                raise TiffError(f"{path} is a truncated TIFF (pixel data missing); re-extract the archive.")
            raw = b"".join(buf[o : o + c] for o, c in zip(offsets, counts))[:nbytes]
            arr = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
            shape = (height, width) if samples == 1 else (height, width, samples)
            return arr.reshape(shape), _geo(tags)
    except KeyError:
        raise TiffError(f"{path} lacks TIFF size tags; it is corrupt.") from None
    return _read_with_tifffile(path), _geo(tags)


def _check_size(path, tags, width, height, samples, bits, max_side, max_bands) -> None:
    if max_side is not None and (width > max_side or height > max_side or not width or not height):
        raise TiffError(f"{path} claims {width} × {height} pixels; a BigEarthNet band or patch is at most "
                        f"{max_side} × {max_side}.")
    if max_bands is not None and samples > max_bands:
        raise TiffError(f"{path} claims {samples} bands; a BigEarthNet GeoTIFF has at most {max_bands}.")
    if max(bits) > 64:
        raise TiffError(f"{path} claims {max(bits)} bits per sample; it is corrupt.")
    tile = (tags.get(322, (0,))[0], tags.get(323, (0,))[0])
    if max_side is not None and max(tile) > MAX_TILE:
        raise TiffError(f"{path} claims {tile[0]} × {tile[1]} pixel tiles; a {max_side} × {max_side} raster needs "
                        f"none above {MAX_TILE}.")


def _read_with_tifffile(path):
    try:
        import tifffile  # only compressed or tiled files need it
    except ImportError:
        raise TiffError(
            f"{path} is compressed or tiled; install tifffile to read it (pip install tifffile)."
        ) from None
    try:
        arr = tifffile.imread(path)
    except Exception as err:  # tifffile raises many kinds
        raise TiffError(f"{path} could not be decoded ({type(err).__name__}); it is corrupt.") from None
    if arr.ndim == 3 and arr.shape[0] < arr.shape[-1]:  # planar [bands, h, w]
        arr = np.moveaxis(arr, 0, -1)
    return arr


def write_geotiff(path, array: np.ndarray, geo: GeoInfo | None = None) -> Path:
    """Write ``array`` (``[height, width]`` or ``[height, width, bands]``) as a TIFF, with
    GeoTIFF tags for ``geo`` (EPSG code and transform) when given, atomically. Readable by
    GDAL, rasterio and QGIS."""
    import tifffile  # imported by the GeoTIFF writers only

    extratags = []
    if geo is not None:
        x0, dx, _, y0, _, dy = geo.transform
        geographic = geo.epsg is not None and 4000 <= geo.epsg < 5000
        keys = [1, 1, 0, 0, 1024, 0, 1, 2 if geographic else 1, 1025, 0, 1, 1]  # model type, PixelIsArea
        if geo.epsg is not None:
            keys += [2048 if geographic else 3072, 0, 1, int(geo.epsg)]
        keys[3] = len(keys) // 4 - 1
        extratags = [
            (33550, "d", 3, (float(dx), float(-dy), 0.0), False),  # ModelPixelScale
            (33922, "d", 6, (0.0, 0.0, 0.0, float(x0), float(y0), 0.0), False),  # ModelTiepoint
            (34735, "H", len(keys), tuple(keys), False),  # GeoKeyDirectory
        ]
    path = Path(path)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]  # one band: tifffile stores [h, w, 1] as one plane anyway
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(array), photometric="minisblack",
                         planarconfig="contig" if array.ndim == 3 else None, extratags=extratags)
    return path
