"""The BigEarthNet-19 facts: the nomenclature in the paper's order, the CORINE mapping, class lookup."""

import pytest

from keras_mlrs import data
from keras_mlrs.errors import MlrsError

pytestmark = pytest.mark.backend_free

KNOWN_MAPPING = {
    "Continuous urban fabric": "Urban fabric",
    "Non-irrigated arable land": "Arable land",
    "Rice fields": "Arable land",
    "Olive groves": "Permanent crops",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Peatbogs": "Inland wetlands",
    "Salines": "Coastal wetlands",
    "Sea and ocean": "Marine waters",
    "Airports": None,
    "Burnt areas": None,
}


def test_nomenclature_is_in_the_papers_order_not_alphabetical():
    assert data.CLASS_NAMES[0] == "Urban fabric"
    assert data.CLASS_NAMES[18] == "Marine waters"
    assert list(data.CLASS_NAMES) != sorted(data.CLASS_NAMES)
    assert len(data.CORINE_LABELS) == 43
    for corine, target in KNOWN_MAPPING.items():
        assert data.CORINE_TO_19[corine] == target
    assert sum(v is None for v in data.CORINE_TO_19.values()) == 11


def test_class_index_by_name_case_insensitive_and_suggestions():
    assert data.class_index("urban FABRIC") == 0
    assert data.class_index("18") == 18
    with pytest.raises(MlrsError, match="Did you mean 'Arable land'"):
        data.class_index("Arable lands")
    with pytest.raises(MlrsError, match="out of range"):
        data.class_index(19)
    with pytest.raises(MlrsError, match="Did you mean 'Urban fabric'"):  # a part of a name
        data.class_index("urban")
    with pytest.raises(MlrsError, match="'Broad-leaved forest' or 'Coniferous forest' or 'Mixed forest'"):
        data.class_index("forest")
