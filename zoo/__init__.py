"""The keras-mlrs model zoo, as data: one recipe per published checkpoint
(``recipes/<name>.toml``) and the model-card template they share (``model_card.md``).

Installed as ``keras_mlrs.zoo``; the code that builds, lists and publishes them is :mod:`keras_mlrs.hub.recipes`.
"""
