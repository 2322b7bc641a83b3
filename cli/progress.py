"""The rich display of ``mlrs train``: a progress bar with patches/s and ETA over the whole
run, and one line per finished epoch. Imported only when training (it needs Keras)."""

import math

import keras
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    def render(self, task):
        speed = task.finished_speed or task.speed
        return Text("- patches/s" if speed is None else f"{speed:,.1f} patches/s")


class TrainingProgress(keras.callbacks.Callback):
    """A Keras callback for :func:`keras_mlrs.runs.train`: pass it in ``callbacks`` and
    its :meth:`start` as ``on_start``."""

    def __init__(self, console):
        super().__init__()
        self.console = console
        self.run_dir = None
        self.bar = None
        self.info = None

    def start(self, info: dict):
        self.info, self.run_dir = info, info["run_dir"]
        c, devices = info["config"], info["devices"]
        where = (f"{len(devices['gpus'])} GPU(s): {', '.join(devices['gpus'])}" if devices["gpus"]
                 else f"CPU ({devices['cpus']} logical device(s))")
        if info["replicas"] > 1:
            where += f", {info['replicas']} replicas ({c.distribute})"
        if info.get("processes", 1) > 1:
            where += f" · process {info['process']} of {info['processes']}"
        n = info["patches"]
        self.console.print(
            f"[bold]mlrs train[/bold] {c.loss}{_params(c.loss_params)} · {c.model}{_params(c.model_params)} "
            f"({info['model_params']:,} parameters) · decision rule {info['decision'].describe()}\n"
            f"data: {info['data'] if c.data else 'the bundled 6-patch sample'} ({info['format']}, split scheme "
            f"[bold]{info['split_scheme']}[/bold]: {_count(n['train'])} train / {_count(n['validation'])} "
            f"validation patches)\n"
            f"training on {where} · batch {c.batch_size} · {c.optimizer} lr {c.lr:g} · seed {c.seed}"
            + (" · mixed precision" if c.mixed_precision else "")
            + (f" · resuming after epoch {info['start_epoch']}" if info["start_epoch"] else "")
            + f"\nrun directory: {self.run_dir}",
            highlight=False,
        )
        if devices["gpus"] and not c.mixed_precision:
            self.console.print("[dim]tip: --mixed-precision roughly doubles throughput on recent GPUs.[/dim]")
        self.patches_per_epoch = n["train"]
        self.steps = math.ceil(n["train"] / c.batch_size) if n["train"] else None
        total = n["train"] * (c.epochs - info["start_epoch"]) if n["train"] else None
        self.bar = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(), _Rate(),
            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=True,
        )
        self.task = self.bar.add_task("train", total=total, epoch=f"{info['start_epoch'] + 1}/{c.epochs}")
        self.bar.start()
        self.done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.in_epoch = 0
        if self.bar is not None:
            self.bar.update(self.task, epoch=f"{epoch + 1}/{self.info['config'].epochs}")

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is None:
            return
        size = self.info["config"].batch_size
        new = min(self.in_epoch + size, self.patches_per_epoch) if self.patches_per_epoch else self.in_epoch + size
        self.bar.advance(self.task, new - self.in_epoch)
        self.in_epoch = new

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        fields = [f"loss {logs.get('loss', math.nan):.4f}", f"val_loss {logs.get('val_loss', math.nan):.4f}"]
        fields += [f"val F1 {a} {logs.get(f'val_f1_{a}', math.nan):.4f}" for a in ("micro", "macro", "samples")]
        self.console.print(f"epoch {epoch + 1}/{self.info['config'].epochs}: " + " · ".join(fields), highlight=False)

    def stop(self):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _params(params: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else ""


def _count(n) -> str:
    return "?" if n is None else f"{n:,}"
