"""Sentinel-2 bands of BigEarthNet: resolution groups, their order, and band statistics.

Inputs are grouped by native resolution, each group in the band order of the
BigEarthNet authors' models:

=========  ============================================  =========
group      bands                                         size
=========  ============================================  =========
``b10m``   B04, B03, B02, B08                            120 × 120
``b20m``   B05, B06, B07, B8A, B11, B12                  60 × 60
``b60m``   B01, B09                                      20 × 20
=========  ============================================  =========

The *stacked* layout concatenates the groups in that order (B04, B03, B02, B08, B05,
B06, B07, B8A, B11, B12, B01, B09) on the 120 × 120 grid; it is also the band order
expected of a multi-band GeoTIFF.
"""

import json
from importlib import resources

_SPEC = json.loads(resources.files(__package__).joinpath("bigearthnet19.json").read_text())["bands"]

#: Resolution group -> its bands, in model order.
GROUPS: dict[str, tuple[str, ...]] = {g: tuple(v["bands"]) for g, v in _SPEC["groups"].items()}
#: Resolution group -> side length of its square patch, in pixels.
GROUP_SIZES: dict[str, int] = {g: int(v["size"]) for g, v in _SPEC["groups"].items()}
#: The 12 bands in stacked order.
STACKED_BANDS: tuple[str, ...] = tuple(b for bands in GROUPS.values() for b in bands)
#: Band -> its resolution group.
BAND_GROUP: dict[str, str] = {b: g for g, bands in GROUPS.items() for b in bands}
#: Per-band mean and standard deviation of the BigEarthNet-S2 training patches (uint16 units).
BAND_MEAN: dict[str, float] = dict(_SPEC["mean"])
BAND_STD: dict[str, float] = dict(_SPEC["std"])
#: Where the statistics come from.
STATS_SOURCE: str = _SPEC["stats_source"]
