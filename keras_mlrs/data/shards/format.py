"""Our shard format: fixed-length records in TFRecord framing, and the manifest beside them.

Shards are TFRecord files whose records all have the same length, :data:`RECORD_BYTES`:

* the 19-class multi-hot vector as little-endian uint16, padded with zeros to
  :data:`LABEL_SLOTS` values (so that, after the 12 bytes of TFRecord framing, the bands
  start on a 64-byte boundary);
* ``b10m``, ``b20m``, ``b60m``: the band groups as raw little-endian uint16
  (``[120, 120, 4]``, ``[60, 60, 6]``, ``[20, 20, 2]``, band order of
  :mod:`keras_mlrs.bigearthnet.bands`), one after the other;
* the patch name, UTF-8, padded with NUL bytes to :data:`NAME_BYTES`.

Any TFRecord reader can read them. Because every framed record (8-byte length, 4-byte
CRC, payload, 4-byte CRC) has the same size, record ``i`` of a shard starts at byte
``i * FRAMED_BYTES``, so the reader (:mod:`keras_mlrs.data.shards.reader`) reads any
record directly. Shards are ``<split>-<i>-of-<n>.tfrecord`` files beside
``manifest.json``, which holds each shard's SHA-256 and record count, the split scheme, the
nomenclature and the band layout (:func:`read_manifest` checks them).
"""

import hashlib
import json
import struct
from pathlib import Path

import google_crc32c
import numpy as np

from keras_mlrs.bigearthnet import CLASS_NAMES, GROUP_SIZES, GROUPS, NUM_CLASSES, split_name
from keras_mlrs.errors import MlrsError, PatchError

FORMAT_NAME = "keras-mlrs-shards"
FORMAT_VERSION = 2
#: label values stored per record (19 used, the rest zero): 12 bytes of framing + 52
#: bytes of labels put the band groups (whose sizes are multiples of 64 bytes) on
#: 64-byte boundaries of the framed record
LABEL_SLOTS = 26
#: bytes of the NUL-padded patch name in each record
NAME_BYTES = 128
#: bytes of each band group in a record, in record order
GROUP_BYTES = {g: GROUP_SIZES[g] ** 2 * len(bands) * 2 for g, bands in GROUPS.items()}
#: bytes of one record's payload
RECORD_BYTES = sum(GROUP_BYTES.values()) + 2 * LABEL_SLOTS + NAME_BYTES
#: bytes of one record in the file: TFRecord framing (length, CRC; payload; CRC) included
FRAMED_BYTES = 12 + RECORD_BYTES + 4
#: where the payload starts in a framed record
PAYLOAD_OFFSET = 12
#: bytes of a framed record before its first band group (TFRecord length and CRC, labels)
HEAD_BYTES = PAYLOAD_OFFSET + 2 * LABEL_SLOTS
#: bytes of a framed record after its last band group (name, TFRecord payload CRC)
TAIL_BYTES = NAME_BYTES + 4
#: where the patch name starts in a framed record
NAME_OFFSET = FRAMED_BYTES - TAIL_BYTES
#: a record's key, as :class:`~keras_mlrs.data.shards.reader.ShardReader` takes it: ``shard << KEY_SHIFT | record``
KEY_SHIFT = 32


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's checksum: CRC-32C, rotated right by 15 bits plus a constant, little-endian."""
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def frame_record(payload: bytes) -> bytes:
    """``payload`` in TFRecord framing (length, its masked CRC, payload, its masked CRC),
    byte for byte as TensorFlow's ``TFRecordWriter`` writes it, without TensorFlow."""
    length = struct.pack("<Q", len(payload))
    return length + _masked_crc(length) + payload + _masked_crc(payload)


def encode_record(groups: dict, labels, name: str) -> bytes:
    """One patch as a record of our format (see the module docstring)."""
    encoded = name.encode()
    if len(encoded) > NAME_BYTES:
        raise PatchError(f"{name}: the patch name is longer than {NAME_BYTES} bytes")
    slots = np.zeros(LABEL_SLOTS, "<u2")
    slots[:NUM_CLASSES] = np.asarray(labels) != 0
    parts = [np.ascontiguousarray(groups[g], "<u2").tobytes() for g in GROUPS]
    return slots.tobytes() + b"".join(parts) + encoded.ljust(NAME_BYTES, b"\0")


def sha256(path: Path) -> str:
    """The SHA-256 of a file, as the manifest records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path) -> dict:
    """The manifest of a prepared folder, checked to be ours, of this format version, and
    of the BigEarthNet-19 nomenclature and band layout."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        raise MlrsError(f"{path} has no readable manifest.json; prepare the data first (`keras_mlrs.data.prepare()`).") from None
    if manifest.get("format") != FORMAT_NAME:
        raise MlrsError(f"{path}/manifest.json is not a keras-mlrs shard manifest.")
    if manifest.get("version") != FORMAT_VERSION:
        raise MlrsError(
            f"{path} holds shards of format version {manifest.get('version')}; this keras-mlrs reads version "
            f"{FORMAT_VERSION}. Prepare it again (`keras_mlrs.data.prepare()`) with `overwrite=True`."
        )
    classes = manifest.get("nomenclature", {}).get("classes")
    bands = {g: tuple(v["bands"]) for g, v in manifest.get("bands", {}).items()}
    if classes != list(CLASS_NAMES) or bands != GROUPS:
        raise MlrsError(
            f"{path} holds another nomenclature or band layout than BigEarthNet-19 with bands "
            f"{GROUPS}; prepare it again with this version of keras-mlrs."
        )
    return manifest


def shard_files(path, split: str) -> list[tuple[str, int]]:
    """The shard files of ``split`` in a prepared folder with their record counts, each
    file checked to hold exactly the records the manifest lists (a truncated or replaced
    shard is refused)."""
    path, split = Path(path), split_name(split)
    manifest = read_manifest(path)
    if split not in manifest["splits"]:
        raise MlrsError(
            f"{path} has no '{split}' split (it has: {', '.join(manifest['splits']) or 'none'}; "
            f"split scheme: {manifest['split_scheme']}). Prepare it with `split='random'` to get all three."
        )
    files = []
    for shard in manifest["splits"][split]["shards"]:
        file = path / shard["file"]
        size = file.stat().st_size if file.exists() else None
        if size != shard["records"] * FRAMED_BYTES:
            found = "is missing" if size is None else f"has {size} bytes, not {shard['records'] * FRAMED_BYTES}"
            raise MlrsError(f"shard {file} {found}; prepare the data again (`keras_mlrs.data.prepare()`) to rewrite it.")
        files.append((str(file), shard["records"]))
    return files


def verify(path) -> dict:
    """Check every shard of a prepared folder against its manifest: present, of the listed
    size, and with the listed SHA-256 (a same-size corruption is caught). Returns
    ``{"shards": checked, "records": total, "bad": [{"file", "split", "problem"}]}``."""
    path = Path(path)
    manifest = read_manifest(path)
    checked, records, bad = 0, 0, []
    for split, entry in manifest["splits"].items():
        for shard in entry["shards"]:
            checked += 1
            records += shard["records"]
            problem = shard_problem(path / shard["file"], shard)
            if problem:
                bad.append({"file": shard["file"], "split": split, "problem": problem})
    return {"shards": checked, "records": records, "bad": bad}


def shard_problem(file: Path, entry: dict) -> str | None:
    """What is wrong with the shard ``file`` against its manifest ``entry`` (``records``,
    ``sha256``): None when nothing is."""
    if not file.is_file():
        return "missing"
    size, expected = file.stat().st_size, entry["records"] * FRAMED_BYTES
    if size != expected:
        return f"{size} bytes, not {expected}"
    if sha256(file) != entry["sha256"]:
        return "its SHA-256 differs from the manifest's (the file is corrupted or was replaced)"
    return None

