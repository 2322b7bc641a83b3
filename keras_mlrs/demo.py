"""The demo behind ``mlrs demo``: the whole pipeline on the bundled real sample.

It prepares the 6 real BigEarthNet-S2 patches that ship with keras-mlrs (random split,
as the official lists put no sample patch in the validation split), trains the study's
K-Branch CNN with two contrasting losses (cross-entropy, whose rule thresholds each
class's probability, and sparsemax, which predicts a sparse support), evaluates each run
on the held-out patch, predicts the labels of one patch with each model, and explains
each model's view of that patch's true classes with LRP heatmaps in one figure. Six
patches demonstrate the pipeline, not accuracy.
"""

import json
from pathlib import Path

from keras_mlrs.files import atomic_write_text


def run_demo(out_dir, loss_names=("bce", "sparsemax"), epochs: int = 3, seed: int = 0, callbacks=(), on_start=None,
             say=print) -> dict:
    """Prepare the sample, train one run per loss, evaluate and predict; returns a summary
    (also written to ``out_dir/summary.json``) with every output's path."""
    from keras_mlrs import evaluation, runs, training
    from keras_mlrs.data import CLASS_NAMES, load, patch_names, prepare, read_patch, sample_path

    out = Path(out_dir)
    data = out / "data"
    say(f"preparing the bundled sample into {data} (random split, seed {seed})")
    manifest = prepare(sample_path(), data, split="random", seed=seed, fractions=(0.6, 0.2, 0.2), workers=1,
                       overwrite=True)
    summary = {"data": str(data), "splits": {k: v["records"] for k, v in manifest["splits"].items()}, "runs": {}}
    test_name = patch_names(data, "test")[0]
    patch = read_patch(next(p for p in sample_path().iterdir() if p.name == test_name))
    for name in loss_names:
        run_dir = out / "runs" / name
        config = training.TrainConfig(loss=name, data=str(data.resolve()), epochs=epochs, seed=seed, batch_size=1024)
        say(f"training {name} for {epochs} epochs into {run_dir}")
        training.train(config, run_dir, overwrite=True, callbacks=callbacks, on_start=on_start)
        model = runs.load_model(run_dir)
        report = evaluation.evaluate(model, load(data, "test", batch_size=64, shuffle=False))
        eval_dir = run_dir / "evaluation-test"
        evaluation.write_report(report, eval_dir / "report.json", eval_dir, eval_dir / "report.md",
                                eval_dir / "per_class_f1.png", title=f"{name} on test")
        prediction = evaluation.predict(model, [patch])[0]
        summary["runs"][name] = {
            "run_dir": str(run_dir), "evaluation": str(eval_dir), "decision": runs.decision_of(model).describe(),
            "test": {a: report[a] for a in ("micro", "macro", "samples")},
            "prediction": {"patch": patch.name, "predicted": prediction["labels"],
                           "true": [c for c, v in zip(CLASS_NAMES, patch.labels) if v > 0]},
        }
    from keras_mlrs.explain import heatmaps, render

    true = [int(i) for i in patch.labels.nonzero()[0]]
    say(f"explaining {patch.name} (true classes) with LRP, one row per model")
    views = []
    for name in loss_names:
        view = heatmaps.explain_patch(runs.load_model(out / "runs" / name), patch, true, preset="lrp.epsilon")
        view.model = name
        views.append(view)
    figure = render.heatmap_figure(views, out / "explanations" / f"{patch.name}_lrp_compare.png",
                                   title=f"{patch.name}: lrp.epsilon")
    summary["explanation"] = str(figure)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
