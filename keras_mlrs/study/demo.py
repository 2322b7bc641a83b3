"""The demo behind ``mlrs demo``: the whole pipeline on the bundled real sample.

It prepares the 6 real BigEarthNet-S2 patches that ship with keras-mlrs (random split,
as the official lists put no sample patch in the validation split), trains the K-Branch
CNN with two contrasting losses (cross-entropy, whose rule thresholds each
class's probability, and sparsemax, which predicts a sparse support), evaluates each run
on the held-out patch, calibrates per-class thresholds on the validation patch and
evaluates them beside the loss's own rule, predicts the labels of one patch with each
model (with either rule), and explains
each model's view of that patch's true classes with LRP heatmaps in one figure. Six
patches demonstrate the pipeline, not accuracy, so the demo trains the official width
(``units=128``, 16.5 M parameters) by default rather than the study's 1,024 units (134 M
parameters, 1.07 GB per checkpoint), which ``mlrs train`` and the zoo use.
"""

import json
from pathlib import Path

from keras_mlrs.bigearthnet import CLASS_NAMES
from keras_mlrs.core.decision import rule_of
from keras_mlrs.core.metrics import STUDY_AVERAGES
from keras_mlrs.data import patch_names, prepare, read_patch, sample_path
from keras_mlrs.explain import heatmaps, render
from keras_mlrs.files import atomic_write_text
from keras_mlrs.runs import (
    RunDirectory,
    TrainConfig,
    calibrate,
    calibrated_rule,
    calibration_file,
    evaluate,
    evaluation_data,
    load_model,
    predict,
    run_report,
    train,
)


def run_demo(out_dir, loss_names=("bce", "sparsemax"), epochs: int = 3, seed: int = 0, units: int = 128, callbacks=(),
             on_start=None, say=print) -> dict:
    """Prepare the sample, train one run per loss, evaluate and predict, explain; returns a
    summary (also written to ``out_dir/summary.json``) with every output's path."""
    out = Path(out_dir)
    data = out / "data"
    say(f"preparing the bundled sample into {data} (random split, seed {seed})")
    manifest = prepare(sample_path(), data, split="random", seed=seed, fractions=(0.6, 0.2, 0.2), workers=1,
                       overwrite=True)
    summary = {"data": str(data), "splits": {k: v["records"] for k, v in manifest["splits"].items()}, "runs": {}}
    test_name = patch_names(data, "test")[0]
    patch = read_patch(sample_path() / test_name)
    true = [int(i) for i in patch.labels.nonzero()[0]]
    views = []
    for name in loss_names:
        run = RunDirectory(out / "runs" / name)
        config = TrainConfig(loss=name, data=str(data.resolve()), epochs=epochs, seed=seed, batch_size=1024,
                             model_params={"units": units})
        say(f"training {name} for {epochs} epochs into {run.path}")
        train(config, run.path, overwrite=True, callbacks=callbacks, on_start=on_start)
        model = load_model(run.path)
        report = run_report(run.path, "test", model=model)
        prediction = predict(model, [patch])[0]
        say(f"calibrating per-class thresholds of {name} on the validation split")
        calibration = calibrate(run.path, model=model)
        rule = calibrated_rule(run.path, model)
        calibrated = evaluate(model, evaluation_data(model, run.path, "test")[0], decision=rule)
        summary["runs"][name] = {
            "run_dir": str(run.path), "evaluation": str(run.evaluation("test")), "decision": rule_of(model).describe(),
            "test": {a: report[a] for a in STUDY_AVERAGES},
            "prediction": {"patch": patch.name, "predicted": prediction["labels"],
                           "true": [c for c, v in zip(CLASS_NAMES, patch.labels) if v > 0]},
            "calibrated": {
                "decision": rule.describe(), "calibration": str(calibration_file(run.path)),
                "validation": calibration["scores"], "test": {a: calibrated[a] for a in STUDY_AVERAGES},
                "predicted": predict(model, [patch], decision=rule)[0]["labels"],
            },
        }
        say(f"explaining {patch.name} (true classes) with LRP for {name}")
        view = heatmaps.explain_patch(model, patch, true, preset="lrp.epsilon")
        view.model = name
        views.append(view)
    figure = render.heatmap_figure(views, out / "explanations" / f"{patch.name}_lrp_compare.png",
                                   title=f"LRP (lrp.epsilon) of the test patch {patch.name}: {', '.join(loss_names)} "
                                         f"(final epoch {epochs} each)")
    summary["explanation"] = str(figure.png)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
