"""The docs stay in step with the registry."""

from pathlib import Path

import pytest

from keras_mlrs import losses

pytestmark = pytest.mark.backend_free

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_losses_page_lists_every_registered_loss_with_its_defaults():
    page = (DOCS / "losses.md").read_text()
    for name in losses.names():
        spec = losses.spec(name)
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"`{spec.cls.__name__}`" in row
        for param, default in spec.hyperparameters.items():
            assert f"`{param}={default!r}`".replace("'", '"') in row, (name, param)
