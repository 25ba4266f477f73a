"""The report's figures, drawn with matplotlib (headless Agg backend) and returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mnist_arch.trainer import EpochStats  # noqa: E402

SIZE = (6.4, 4.0)  # inches
DPI = 110


@dataclass(frozen=True)
class Point:
    """One trained trial in the accuracy-vs-parameters plot."""

    n_params: int
    accuracy: float
    label: str | None = None  # iteration name, marked and annotated
    pruned: bool = False


@dataclass(frozen=True)
class Curve:
    label: str
    values: Sequence[float]  # accuracy per epoch, epoch 1 first


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def _percent_axis(axis, label: str) -> None:  # noqa: ANN001
    axis.set_ylabel(label)
    axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=1))
    axis.grid(alpha=0.3)


def learning_curve_png(history: Sequence[EpochStats], title: str) -> bytes:
    """Validation and test accuracy per epoch of one run."""
    figure, axis = plt.subplots(figsize=SIZE)
    epochs = [e.epoch for e in history]
    axis.plot(epochs, [e.val_acc for e in history], marker="o", label="validation")
    axis.plot(epochs, [e.test_acc for e in history], marker="s", label="test")
    axis.set_xlabel("epoch")
    axis.set_title(title)
    _percent_axis(axis, "accuracy")
    axis.legend()
    return _png(figure)


def accuracy_vs_params_png(points: Sequence[Point], max_params: int | None, metric: str) -> bytes:
    """Every trained trial; the budget as a vertical line, the iterations marked by name."""
    figure, axis = plt.subplots(figsize=SIZE)
    for pruned, style in (
        (False, dict(c="tab:blue", label="complete")),
        (True, dict(c="0.7", label="pruned")),
    ):
        group = [p for p in points if p.pruned == pruned and p.label is None]
        if group:
            axis.scatter([p.n_params for p in group], [p.accuracy for p in group], s=18, **style)
    for point in (p for p in points if p.label):
        axis.scatter(point.n_params, point.accuracy, marker="*", s=160, c="tab:red", zorder=3)
        axis.annotate(
            point.label, (point.n_params, point.accuracy), textcoords="offset points", xytext=(5, 5)
        )
    if max_params:
        axis.axvline(max_params, color="tab:red", linestyle="--", label=f"budget {max_params:,}")
    axis.set_xlabel("parameters")
    axis.set_title(f"{metric} vs parameters")
    _percent_axis(axis, metric)
    axis.legend(loc="best")
    return _png(figure)


def best_over_trials_png(numbers: Sequence[int], values: Sequence[float], metric: str) -> bytes:
    """Each complete trial's value and the best so far."""
    figure, axis = plt.subplots(figsize=SIZE)
    best, running = [], float("-inf")
    for value in values:
        running = max(running, value)
        best.append(running)
    axis.scatter(numbers, values, s=14, c="tab:blue", label="trial")
    axis.step(numbers, best, where="post", c="tab:red", label="best so far")
    axis.set_xlabel("trial number")
    axis.set_title(f"best {metric} over trials")
    _percent_axis(axis, metric)
    axis.legend(loc="lower right")
    return _png(figure)


def learning_curves_png(curves: Sequence[Curve], metric: str) -> bytes:
    figure, axis = plt.subplots(figsize=SIZE)
    for curve in curves:
        style = "--" if curve.label.startswith("iteration") else "-"
        axis.plot(range(1, len(curve.values) + 1), curve.values, style, marker=".", label=curve.label)
    axis.set_xlabel("epoch")
    axis.set_title(f"{metric} per epoch")
    _percent_axis(axis, metric)
    axis.legend(fontsize="small", loc="lower right")
    return _png(figure)


def importances_png(importances: dict[str, float]) -> bytes:
    """Horizontal bars, most important on top."""
    figure, axis = plt.subplots(figsize=(SIZE[0], max(2.5, 0.35 * len(importances) + 1)))
    names = list(importances)[::-1]
    axis.barh(names, [importances[n] for n in names], color="tab:blue")
    axis.set_xlabel("importance (PED-ANOVA, normalised)")
    axis.set_title("hyperparameter importances")
    axis.grid(axis="x", alpha=0.3)
    return _png(figure)
