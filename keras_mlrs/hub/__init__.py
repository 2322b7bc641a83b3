"""The Hugging Face Hub: publishing trained models with their model card, loading them back,
and the zoo's recipes.

* :mod:`~keras_mlrs.hub.repository`: :func:`export`, :func:`push`, :func:`resolve`,
  :func:`from_pretrained`, :func:`load_model` (any model source a command takes) and
  :func:`load_model_and_rule` (with its fixed or calibrated decision rule);
* :mod:`~keras_mlrs.hub.card`: what a card declares and how it is rendered;
* :mod:`~keras_mlrs.hub.recipes`: the zoo, one recipe per published checkpoint.
"""

from keras_mlrs.errors import HubError
from keras_mlrs.hub.card import (
    CARD_KEY,
    NOMENCLATURE,
    check_declaration,
    check_model,
    declaration,
    model_card,
    read_card,
)
from keras_mlrs.hub.repository import (
    download,
    export,
    from_pretrained,
    is_exported_folder,
    load_model,
    load_model_and_rule,
    push,
    repo_id,
    resolve,
)

__all__ = [
    "CARD_KEY", "NOMENCLATURE", "HubError", "check_declaration", "check_model", "declaration", "download", "export",
    "from_pretrained", "is_exported_folder", "load_model", "load_model_and_rule", "model_card", "push", "read_card",
    "repo_id", "resolve",
]
