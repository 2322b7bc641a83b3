"""Model cards: what a published model declares about itself, checked when it is loaded, and
the card itself (``README.md``), rendered from the zoo's template (``zoo/model_card.md``).

The card's YAML metadata carries the Hub's standard keys (``library_name: keras``, licence,
tags, datasets, ``pipeline_tag``, and ``model-index`` with the evaluated precision, recall
and F1) and a ``keras_mlrs`` section declaring what the model expects: the nomenclature and
its class order, the input layout and band order. Loading checks that section, so a model
of another nomenclature or band layout is refused instead of silently mislabelling classes.
"""

from __future__ import annotations

import string
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from keras_mlrs.bigearthnet import CLASS_NAMES, GROUP_SIZES, GROUPS, STACKED_BANDS, STATS_SOURCE
from keras_mlrs.core import decision, losses
from keras_mlrs.core.metrics import SCORES, STUDY_AVERAGES
from keras_mlrs.data.shards.format import sha256
from keras_mlrs.errors import HubError
from keras_mlrs.models import input_layout
from keras_mlrs.runs.evaluation import checkpoint_title, overall_markdown, per_class_markdown
from keras_mlrs.version import __version__

#: The nomenclature every keras-mlrs model predicts, in this class order.
NOMENCLATURE = "BigEarthNet-19"
#: The key of the model card's metadata section written and checked by keras-mlrs.
CARD_KEY = "keras_mlrs"
#: Tags of every published model (the loss is added as ``loss-<name>``).
TAGS = ("keras-mlrs", "remote-sensing", "sentinel-2", "bigearthnet", "multi-label-classification")
#: Folder of the card's figures inside a repository.
IMAGES = "images"
#: Default licence of published models (the project's).
LICENSE = "apache-2.0"
#: What the card says of each registered architecture.
ARCHITECTURES = {
    "kbranch": "the K-Branch CNN of Sumbul & Demir as the BigEarthNet authors' code builds it (the study's width "
               "is `units=1024`, the official model's 128)",
    "resnet50": "a ResNet-50 trained from scratch on the 12 bands stacked at 10 m",
}


def declaration(model) -> dict:
    """The card's ``keras_mlrs`` section for ``model``: nomenclature, classes, input layout,
    bands and their normalisation."""
    layout = input_layout(model)
    bands = {g: list(b) for g, b in GROUPS.items()} if layout == "groups" else {"stacked": list(STACKED_BANDS)}
    return {
        "version": __version__, "nomenclature": NOMENCLATURE, "classes": list(CLASS_NAMES),
        "input_layout": layout, "bands": bands, "input_dtype": "uint16",
        "normalisation": f"inside the model (BandNormalization layer). Statistics: {STATS_SOURCE}",
    }


def check_declaration(meta, source: str) -> None:
    """Refuse a model whose card declares another nomenclature, class order or band layout
    than keras-mlrs uses. A card without a ``keras_mlrs`` section is accepted (the model's
    own input and output shapes are checked when it is used)."""
    if not meta:
        return
    if not isinstance(meta, dict):
        raise HubError(f"{source}: the model card's '{CARD_KEY}' metadata is not a mapping; the card is damaged.")
    nomenclature = meta.get("nomenclature")
    if nomenclature != NOMENCLATURE:
        raise HubError(f"{source} declares nomenclature '{nomenclature}', but keras-mlrs models predict "
                       f"{NOMENCLATURE}; use a model trained on {NOMENCLATURE}.")
    classes = meta.get("classes")
    if classes is not None and list(classes) != list(CLASS_NAMES):
        where = next((i for i, (a, b) in enumerate(zip(classes, CLASS_NAMES)) if a != b), min(len(classes), 19))
        raise HubError(f"{source} declares its {NOMENCLATURE} classes in another order or set (first difference at "
                       f"index {where}); keras-mlrs uses the paper's order (Urban fabric = 0 ... Marine waters = 18).")
    bands = meta.get("bands")
    expected = ({g: list(b) for g, b in GROUPS.items()}, {"stacked": list(STACKED_BANDS)})
    if bands is not None and bands not in expected:
        raise HubError(f"{source} declares the band layout {bands}, which is neither keras-mlrs' band groups "
                       f"{expected[0]} nor its stacked order {expected[1]['stacked']}; it cannot be fed correctly.")


#: The model files whose SHA-256 a card declares and loading checks (the calibrated
#: thresholds too, when the model carries them).
MODEL_FILES = ("config.json", "metadata.json", "model.weights.h5", "calibration.json")


def file_hashes(folder) -> dict:
    """SHA-256 of each of :data:`MODEL_FILES` in an exported folder."""
    return {name: sha256(Path(folder) / name) for name in MODEL_FILES if (Path(folder) / name).is_file()}


def check_files(meta, folder, source: str) -> None:
    """Refuse a folder whose model files differ from the hashes its card declares (a damaged
    download, weights zeroed or replaced in the cache)."""
    for name, digest in ((meta or {}).get("files") or {}).items():
        path = Path(folder) / name
        if not path.is_file() or sha256(path) != digest:
            raise HubError(f"{source}: {name} is not the file its model card declares (SHA-256 differs or the file is "
                           "missing); the download is damaged: remove it from the Hugging Face cache and pull again.")


def check_model(model, source: str) -> None:
    """Refuse a model that does not output one logit per BigEarthNet-19 class, whatever its
    card declares (a 43-class model under a BigEarthNet-19 card would mislabel every class)."""
    classes = int(model.outputs[0].shape[-1])
    if classes != len(CLASS_NAMES):
        raise HubError(f"{source}: the model outputs {classes} logits, but keras-mlrs models predict the "
                       f"{len(CLASS_NAMES)} classes of {NOMENCLATURE}; the repository is not a keras-mlrs model.")


def read_card(folder):
    """The :class:`huggingface_hub.ModelCard` of an exported or downloaded folder (None when
    it has no ``README.md``)."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return None
    try:
        return ModelCard.load(path)
    except Exception as err:  # noqa: BLE001 - any reason the card's YAML does not parse
        raise HubError(f"the model card {path} does not parse ({str(err).splitlines()[0]}); the repository is damaged.") from None


def _eval_results(report: dict, split: str) -> list:
    results = []
    for average in STUDY_AVERAGES:
        for score in SCORES:
            results.append(EvalResult(
                task_type="image-classification", task_name="Multi-label image classification",
                dataset_type="bigearthnet", dataset_name="BigEarthNet-19 (Sentinel-2)", dataset_split=split,
                metric_type=score, metric_value=round(float(report[average][score]), 6),
                metric_name=f"{'F1' if score == 'f1' else score.capitalize()} ({average})", metric_config=average,
            ))
    return results


def model_card(model, repo: str, config, state: dict, report: dict, lrp: dict, license: str = LICENSE,
               recipe: dict | None = None, files: dict | None = None, calibration: dict | None = None) -> str:
    """The model card (``README.md``): YAML metadata, then the text of ``zoo/model_card.md``.
    ``calibration``: the run's calibrated thresholds (``calibration.json``), when it has them."""
    spec = losses.spec(config.loss)
    split = report.get("split", "test")
    meta = declaration(model)
    meta.update({"loss": config.loss, "loss_params": {**spec.hyperparameters, **config.loss_params},
                 "decision": report["decision"], "recipe": (recipe or {}).get("name"), "files": files,
                 "calibration": _calibration_meta(calibration)})
    meta = {k: v for k, v in meta.items() if v is not None}
    data = ModelCardData(
        library_name="keras", license=license, tags=[*TAGS, f"loss-{config.loss.replace('_', '-')}"],
        datasets=["bigearthnet"], pipeline_tag="image-classification", model_name=repo,
        eval_results=_eval_results(report, split), metrics=["precision", "recall", "f1"], **{CARD_KEY: meta},
    )
    rule = decision.get(report["decision"])
    params = meta["loss_params"]
    fields = {
        "repo": repo,
        "loss": config.loss,
        "loss_description": spec.description,
        "loss_params": ", ".join(f"`{k}={v!r}`" for k, v in params.items()) or "none",
        "decision": f"`{rule.name}`: {rule.describe()}",
        "recipe": f" It is the zoo recipe `{recipe['name']}`: {recipe.get('description', '')}" if recipe else "",
        "bands": _bands_table(meta),
        "layout": meta["input_layout"],
        "normalisation": meta["normalisation"],
        "classes": "\n".join(f"{i}. {name}" for i, name in enumerate(CLASS_NAMES)),
        "model": config.model,
        "architecture": ARCHITECTURES.get(config.model, "a registered keras-mlrs architecture"),
        "model_params": ", ".join(f"`{k}={v!r}`" for k, v in config.model_params.items()) or "defaults",
        "parameters": f"{model.count_params():,}",
        "training": _training_table(config, state),
        "split": split,
        "checkpoint": checkpoint_title(report.get("checkpoint")),
        "best": f"{state['best']['epoch']} (validation sample-F1 {state['best']['value']:.4f})",
        "patches": f"{report['patches']:,}",
        "overall": overall_markdown(report),
        "per_class": per_class_markdown(report),
        "lrp_patch": lrp["patch"],
        "lrp_classes": ", ".join(lrp["classes"]),
        "lrp_preset": lrp["preset"],
        "lrp_bands": lrp.get("bands", "all bands"),
        "images": IMAGES,
        "calibration": _calibration_section(calibration, repo),
    }
    body = string.Template(template_text()).substitute(fields)
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def template_text() -> str:
    """The model-card template shared by every published model (``zoo/model_card.md``)."""
    return resources.files("keras_mlrs.zoo").joinpath("model_card.md").read_text()


def _calibration_meta(calibration: dict | None) -> dict | None:
    """The card's ``calibration`` metadata: what was fitted, on what, and the rule it makes."""
    if not calibration:
        return None
    return {key: calibration[key] for key in ("objective", "split", "patches", "confidence", "decision", "scores")}


def _calibration_section(calibration: dict | None, repo: str) -> str:
    """The card's section on the calibrated thresholds (empty without them)."""
    if not calibration:
        return ""
    rule = decision.get(calibration["decision"])
    fixed, calibrated = calibration["scores"]["fixed"], calibration["scores"]["calibrated"]
    objective = "sample-averaged F1" if calibration["objective"] == "sample-f1" else "each class's F1"
    rows = [f"| class | threshold ({calibration['confidence']}) |", "| --- | ---: |"]
    rows += [f"| {name} | {t:.4g} |" for name, t in calibration["thresholds"].items()]
    return "\n".join([
        "## Calibrated thresholds", "",
        f"The repository also carries one threshold per class (`calibration.json`), fitted on the "
        f"{calibration['split']} split ({_patches(calibration['patches'])}) to maximise the {objective}: "
        f"`{rule.name}`: {rule.describe()}. On that split they give sample-F1 {calibrated['samples']:.4f} and "
        f"macro-F1 {calibrated['macro']:.4f}, against {fixed['samples']:.4f} and {fixed['macro']:.4f} with the "
        "fixed rule. They are not the default (the results above use the fixed rule, as the study does); "
        f"apply them with `mlrs evaluate hf://{repo} --thresholds calibrated` (also `predict` and "
        "`explain --all-predicted`) or `keras_mlrs.hub.load_model_and_rule(..., thresholds=\"calibrated\")`.", "",
        *rows, "",
    ])


def _patches(count: int) -> str:
    return f"{count:,} patch" + ("" if count == 1 else "es")


def _bands_table(meta) -> str:
    rows = ["| input | bands, in order | size |", "| --- | --- | --- |"]
    for group, bands in meta["bands"].items():
        size = GROUP_SIZES.get(group, GROUP_SIZES["b10m"])
        rows.append(f"| `{group}` | {', '.join(bands)} | {size} × {size} × {len(bands)} uint16 |")
    return "\n".join(rows)


def _training_table(config, state) -> str:
    values = {k: v for k, v in asdict(config).items() if k not in ("data", "loss_params")}
    values["data"] = Path(config.data).name if config.data else "the bundled 6-patch sample"
    values["epochs trained"] = state["epoch"]
    values["best epoch (validation sample-F1)"] = f"{state['best']['epoch']} ({state['best']['value']:.4f})"
    rows = ["| option | value |", "| --- | --- |"]
    rows += [f"| {k} | `{v}` |" for k, v in values.items()]
    return "\n".join(rows)




__all__ = ["CARD_KEY", "IMAGES", "LICENSE", "NOMENCLATURE", "TAGS", "check_declaration", "check_model", "declaration",
           "model_card",
           "read_card", "template_text"]
