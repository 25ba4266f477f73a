"""The report's figures, drawn with matplotlib (headless Agg backend) and returned as PNG bytes.

Accuracies of a search crowd into the top percent or two, so every accuracy axis follows the data
(`focus_range`) instead of spanning everything: the few trials below it are counted, not squeezed onto it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

if TYPE_CHECKING:
    from mnist_arch.trainer import EpochStats


SIZE = (7.2, 4.6)  # inches
DPI = 110
PERCENTILE = 10  # accuracy axes start at this percentile of the plotted trials ...
DEPTH = 0.015  # ... or this far below the best, whichever is higher
MUTED = "0.6"
WINNER_TEXT = "darkgoldenrod"
ITERATION_MARKERS = {"iteration-1": "s", "iteration-2": "D", "iteration-3": "^"}
ITERATION_COLOURS = {"iteration-1": "tab:orange", "iteration-2": "tab:purple", "iteration-3": "tab:red"}


@dataclass(frozen=True)
class Point:
    """One trained trial in the accuracy-vs-parameters plot."""

    n_params: int
    accuracy: float  # a pruned trial's last reported value
    label: str | None = None  # iteration name, marked and annotated
    pruned: bool = False
    number: int | None = None  # trial number


@dataclass(frozen=True)
class Curve:
    label: str
    values: Sequence[float | None]  # accuracy per epoch, epoch 1 first; None where not measured


@dataclass(frozen=True)
class Level:
    """A reference accuracy drawn as a horizontal line (an iteration's)."""

    label: str
    value: float


@dataclass(frozen=True)
class WinnerMark:
    """The confirmed best: one model retrained with several seeds."""

    label: str
    n_params: int
    mean: float
    std: float
    seeds: int = 0
    note: str = ""  # names the accuracy where it is not the plotted one

    @classmethod
    def from_attr(cls, attr: Mapping | None, metric: str) -> WinnerMark | None:
        """The study's "winner" user attribute, or None where it is absent or incomplete.

        The mean of the plotted metric is preferred; the other one is used, and named, where only it exists.
        """
        if not isinstance(attr, Mapping) or not isinstance(attr.get("n_params"), int):
            return None
        preferred, other = ("test", "val") if metric.startswith("test") else ("val", "test")
        for kind in (preferred, other):
            mean = attr.get(f"{kind}_mean")
            if isinstance(mean, int | float):
                label = str(attr.get("label") or f"trial-{attr.get('trial', '?')}")
                std = float(attr.get(f"{kind}_std") or 0.0)
                seeds = int(attr.get("seeds") or 0)
                note = "" if kind == preferred else f"{kind} accuracy"
                return cls(label, attr["n_params"], float(mean), std, seeds, note)
        return None

    def text(self) -> str:
        details = ", ".join(filter(None, [self.note, f"{self.seeds} seeds" if self.seeds else ""]))
        return f"confirmed {self.label}: {100 * self.mean:.2f} ± {100 * self.std:.2f} %" + (
            f" ({details})" if details else ""
        )


@dataclass(frozen=True)
class YRange:
    low: float
    high: float

    def below(self, values: Sequence[float]) -> int:
        return sum(v < self.low for v in values)


def focus_range(values: Sequence[float], keep: Sequence[float] = ()) -> YRange:
    """The accuracy axis: from the PERCENTILE-th value or best − DEPTH, whichever is higher, to the best.

    `values` are the plotted accuracies the range is chosen from; `keep` must stay visible (the iterations,
    a winner's mean ± std) even where they lie lower. Both ends get a margin.
    """
    every = [*values, *keep]
    if not every:
        return YRange(0.0, 1.0)
    best = max(every)
    low = max(float(np.percentile(values, PERCENTILE)), best - DEPTH) if values else best - DEPTH
    low = min([low, *keep])
    pad = max(0.1 * (best - low), 0.0005)
    return YRange(low - 1.2 * pad, best + pad)  # a little more below: the bottom edge marks lower values


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point dominates (as few or fewer params and at least as accurate, one strictly).

    Sorted by parameters; accuracy then rises strictly, except for identical points, which are all kept.
    """
    front: list[Point] = []
    best = -math.inf
    for point in sorted(points, key=lambda p: (p.n_params, -p.accuracy)):
        if point.accuracy > best:
            front.append(point)
            best = point.accuracy
        elif front and (point.n_params, point.accuracy) == (front[-1].n_params, front[-1].accuracy):
            front.append(point)
    return front


def stack_labels(
    anchors: Sequence[float], heights: Sequence[float], gap: float, bottom: float, top: float
) -> list[float]:
    """Vertical centres for labels (display units, y up) as near their anchors as they go without overlapping.

    Labels keep their anchors' order from the top, so leader lines do not cross; the stack is pushed up where
    it would leave [bottom, top] at the bottom, and down where it would leave it at the top.
    """
    order = sorted(range(len(anchors)), key=lambda i: -anchors[i])
    centres = [0.0] * len(anchors)
    floor = top
    for i in order:
        centres[i] = min(anchors[i], floor - heights[i] / 2)
        floor = centres[i] - heights[i] / 2 - gap
    if order:
        last = order[-1]
        lift = bottom - (centres[last] - heights[last] / 2)
        if lift > 0:
            centres = [c + lift for c in centres]
    return centres


def percent_labels(values: Sequence[float], max_decimals: int = 4) -> list[str]:
    """Tick labels in percent with the fewest decimals (one number for all) that shows every value exactly,
    or failing that at least distinctly (99.25 must not read 99.2)."""
    distinct: list[str] | None = None
    for decimals in range(max_decimals + 1):
        labels = [f"{100 * v:.{decimals}f} %" for v in values]
        if all(abs(round(100 * v, decimals) - 100 * v) < 1e-6 for v in values):
            return labels
        if distinct is None and len(set(labels)) == len(labels):
            distinct = labels
    return distinct or labels


class PercentTicks(ticker.Formatter):
    """Accuracy ticks as percent; decimals chosen per axis by `percent_labels`."""

    def __init__(self) -> None:
        self._labels: dict[float, str] = {}

    def set_locs(self, locs: Sequence[float]) -> None:
        super().set_locs(locs)
        self._labels = dict(zip(locs, percent_labels(list(locs)), strict=True))

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self._labels.get(x) or f"{100 * x:.2f} %"


def _new() -> tuple[Figure, Axes]:
    return plt.subplots(figsize=SIZE, dpi=DPI)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def _accuracy_axis(axis: Axes, label: str, span: YRange) -> None:
    axis.set_ylim(span.low, span.high)
    axis.set_ylabel(label)
    axis.yaxis.set_major_locator(ticker.MaxNLocator(nbins=7, steps=[1, 2, 5, 10]))
    axis.yaxis.set_major_formatter(PercentTicks())
    axis.grid(alpha=0.3)


def _integer_x(axis: Axes, low: float, high: float) -> None:
    """An x-axis of whole numbers (trial numbers, epochs) from `low` to `high`, with whole-number ticks only.

    MaxNLocator(integer=True) alone falls back to fractional ticks (printed as repeated integers, or as
    0.96, 0.98 epochs) whenever fewer than two integers lie on the axis; `min_n_ticks=1` keeps it whole.
    """
    axis.set_xlim(low, high)
    axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    axis.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:.0f}"))


def _legend_below(axis: Axes, columns: int = 2) -> None:
    axis.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=columns, fontsize="small", frameon=False
    )


def _mark_below(axis: Axes, xs: Sequence[float], span: YRange) -> None:
    """Down-triangles on the bottom edge at the x of each value below the axis; the legend counts them."""
    if not xs:
        return
    edge = blended_transform_factory(axis.transData, axis.transAxes)
    count = f"{len(xs)} trial{'s' if len(xs) > 1 else ''}"
    axis.scatter(
        xs,
        [0.0] * len(xs),
        marker="v",
        s=24,
        c=MUTED,
        transform=edge,
        clip_on=False,
        zorder=4,
        label=f"{count} below {100 * span.low:.2f} % (on the bottom edge)",
    )


def learning_curve_png(history: Sequence[EpochStats], title: str) -> bytes:
    return _png(learning_curve_figure(history, title))


def learning_curve_figure(history: Sequence[EpochStats], title: str) -> Figure:
    """Validation and test accuracy per epoch of one run."""
    figure, axis = _new()
    epochs = [e.epoch for e in history]
    val, test = [e.val_acc for e in history], [e.test_acc for e in history]
    axis.plot(*measured_points(val, epochs), marker="o", label="validation")
    axis.plot(*measured_points(test, epochs), marker="s", label="test")
    axis.set_xlabel("epoch")
    axis.set_title(title)
    _integer_x(axis, 0.5, max(epochs, default=1) + 0.5)
    _accuracy_axis(axis, "accuracy", curve_range([val, test]))
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


def accuracy_vs_params_figure(
    points: Sequence[Point], max_params: int | None, metric: str, winner: WinnerMark | None = None
) -> Figure:
    """Every trained trial by parameter count: the Pareto front, the iterations, the confirmed winner."""
    figure, axis = _new()
    complete = [p for p in points if not p.pruned]
    iterations = [p for p in complete if p.label]
    keep = [p.accuracy for p in iterations]
    if winner:
        keep += [winner.mean - winner.std, winner.mean + winner.std]
    span = focus_range([p.accuracy for p in points], keep)

    pruned = [p for p in points if p.pruned]
    _draw_pruned(axis, [p.n_params for p in pruned], [p.accuracy for p in pruned])
    searched = [p for p in complete if not p.label]
    if searched:
        axis.scatter([p.n_params for p in searched], [p.accuracy for p in searched], s=18, c="tab:blue")
        axis.scatter([], [], s=18, c="tab:blue", label="complete")
    _draw_front(axis, pareto_front(complete), max(p.n_params for p in points) if points else 0)
    labels = [_draw_iteration(axis, p) for p in iterations]
    best = max(searched, key=lambda p: p.accuracy, default=None)
    if best and not (winner and winner.label == f"trial-{best.number}"):
        name = f"trial {best.number}" if best.number is not None else "best"
        text = f"{name} (best searched): {100 * best.accuracy:.2f} %"
        labels.append(_Label(best.n_params, best.accuracy, text, "tab:blue"))
    if winner:
        _draw_winner(axis, winner)
        labels.append(_Label(winner.n_params, winner.mean, winner.text().replace(": ", "\n", 1), WINNER_TEXT))
    if max_params:
        axis.axvline(max_params, color="tab:red", linestyle="--", lw=1, label=f"budget {max_params:,}")

    xs = [p.n_params for p in points] + ([max_params] if max_params else [])
    left, right = (min(xs), max(xs)) if xs else (0, 1)
    width = max(right - left, 1000)
    axis.set_xlim(left - 0.04 * width, right + 0.34 * width)  # provisional: _place_labels fits the right part
    _accuracy_axis(axis, metric, span)
    _mark_below(axis, [p.n_params for p in points if p.accuracy < span.low], span)
    axis.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    axis.set_xlabel("parameters")
    axis.set_title(f"{metric} vs parameters")
    _legend_below(axis)
    figure.tight_layout()
    if labels:
        _place_labels(figure, axis, labels, right)
    return figure


def accuracy_vs_params_png(
    points: Sequence[Point], max_params: int | None, metric: str, winner: WinnerMark | None = None
) -> bytes:
    return _png(accuracy_vs_params_figure(points, max_params, metric, winner))


def _draw_pruned(axis: Axes, xs: Sequence[float], ys: Sequence[float]) -> None:
    """Pruned trials, hollow and muted, at their last reported value."""
    if xs:
        axis.scatter(xs, ys, s=14, facecolors="none", edgecolors=MUTED, label="pruned (last reported value)")


def _draw_front(axis: Axes, front: Sequence[Point], right: float) -> None:
    """Best accuracy reachable with at most x parameters: a step up at each non-dominated point."""
    if not front:
        return
    xs = [p.n_params for p in front] + [max(right, front[-1].n_params)]
    ys = [p.accuracy for p in front] + [front[-1].accuracy]
    axis.step(xs, ys, where="post", color="tab:green", lw=1.3, alpha=0.8, zorder=2, label="Pareto front")


def _draw_iteration(axis: Axes, point: Point) -> _Label:
    colour = ITERATION_COLOURS.get(point.label, "tab:red")
    # iteration-1 and -2 can share a point: hollow, larger markers first keep both visible
    size = {"iteration-1": 120, "iteration-2": 45}.get(point.label, 90)
    hollow = point.label == "iteration-1"
    axis.scatter(
        point.n_params,
        point.accuracy,
        marker=ITERATION_MARKERS.get(point.label, "P"),
        s=size,
        facecolors="none" if hollow else colour,
        edgecolors=colour,
        linewidths=1.6,
        zorder=5,
    )
    return _Label(point.n_params, point.accuracy, f"{point.label}: {100 * point.accuracy:.2f} %", colour)


def _draw_winner(axis: Axes, winner: WinnerMark) -> None:
    axis.errorbar(
        winner.n_params, winner.mean, yerr=winner.std, fmt="none", ecolor="0.2", capsize=4, lw=1.2, zorder=6
    )
    axis.scatter(
        winner.n_params,
        winner.mean,
        marker="*",
        s=260,
        c="gold",
        edgecolors="0.2",
        linewidths=0.8,
        zorder=7,
        label="confirmed winner (mean ± std)",
    )


@dataclass(frozen=True)
class _Label:
    x: float  # the point it names, data coordinates
    y: float
    text: str
    colour: str


def _place_labels(figure: Figure, axis: Axes, labels: Sequence[_Label], data_right: float) -> None:
    """Labels in a column at the right of the axes, each near its point's height, with a leader line to it.

    The x-axis is widened so that every point up to `data_right` lies left of the column.
    """
    renderer = figure.canvas.get_renderer()
    column = blended_transform_factory(axis.transAxes, axis.transData)  # x: axes fraction, y: data
    texts = [
        axis.text(0, label.y, label.text, transform=column, fontsize="small", va="center", color=label.colour)
        for label in labels
    ]
    for text in texts:
        text.set_bbox(dict(boxstyle="round,pad=0.25", fc="white", ec="0.85", alpha=0.95))
        text.set_gid("label")
    box = axis.get_window_extent(renderer)
    start = 1 - (max(t.get_window_extent(renderer).width for t in texts) + 6) / box.width
    low, _ = axis.get_xlim()
    axis.set_xlim(low, low + (data_right - low) / (start - 0.06))
    axis.set_xticks([t for t in axis.get_xticks() if low <= t <= data_right])  # none under the labels
    anchors = [axis.transData.transform((label.x, label.y))[1] for label in labels]
    heights = [t.get_window_extent(renderer).height for t in texts]
    centres = stack_labels(anchors, heights, gap=4, bottom=box.y0 + 4, top=box.y1 - 4)
    to_data = axis.transData.inverted()
    for text, centre, label in zip(texts, centres, labels, strict=True):
        y = to_data.transform((0, centre))[1]
        text.set_position((start, y))
        axis.annotate(
            "",
            xy=(label.x, label.y),
            xytext=(start, y),
            textcoords=column,
            arrowprops=dict(arrowstyle="-", color=label.colour, lw=0.8, alpha=0.7, shrinkA=0, shrinkB=4),
            zorder=3,
        )


def best_over_trials_figure(
    points: Sequence[Point], metric: str, references: Sequence[Level] = (), winner: WinnerMark | None = None
) -> Figure:
    """Searched trials by number and the best so far of the complete ones, next to reference levels (the
    iterations) and the confirmed best; pruned trials muted at their last reported value."""
    figure, axis = _new()
    searched = sorted((p for p in points if p.label is None and p.number is not None), key=lambda p: p.number)
    complete = [p for p in searched if not p.pruned]
    pruned = [p for p in searched if p.pruned]
    keep = [r.value for r in references]
    if winner:
        keep += [winner.mean - winner.std, winner.mean + winner.std]
    span = focus_range([p.accuracy for p in searched], keep)
    end = max((p.number for p in searched), default=0)
    _draw_pruned(axis, [p.number for p in pruned], [p.accuracy for p in pruned])
    if complete:
        axis.scatter(
            [p.number for p in complete], [p.accuracy for p in complete], s=16, c="tab:blue", alpha=0.6
        )
        axis.scatter([], [], s=16, c="tab:blue", alpha=0.6, label="complete")
        _draw_best_so_far(axis, complete, end)
    for ref, style in zip(references, ("--", ":", "-."), strict=False):
        colour = ITERATION_COLOURS.get(ref.label, "tab:red")
        axis.axhline(ref.value, color=colour, ls=style, lw=1.2, label=f"{ref.label}: {100 * ref.value:.2f} %")
    right = end + 1
    if winner:
        right = end + 3
        band = (winner.mean - winner.std, winner.mean + winner.std)
        axis.fill_between([end + 1, end + 3], *band, color="gold", alpha=0.35, lw=0)
        axis.errorbar(end + 2, winner.mean, yerr=winner.std, fmt="none", ecolor="0.2", capsize=4, zorder=6)
        axis.scatter(
            end + 2, winner.mean, marker="*", s=240, c="gold", edgecolors="0.2", zorder=7, label=winner.text()
        )
    _integer_x(axis, min((p.number for p in searched), default=0) - 1, right + 1)
    _accuracy_axis(axis, metric, span)
    _mark_below(axis, [p.number for p in searched if p.accuracy < span.low], span)
    axis.set_xlabel("trial number")
    axis.set_title(f"best {metric} over trials")
    _legend_below(axis)
    figure.tight_layout()
    return figure


def _draw_best_so_far(axis: Axes, complete: Sequence[Point], end: int) -> None:
    best: list[Point] = []
    for point in complete:
        best.append(point if not best or point.accuracy > best[-1].accuracy else best[-1])
    xs = [p.number for p in complete] + [end]
    ys = [b.accuracy for b in best] + [best[-1].accuracy]
    axis.step(xs, ys, where="post", c="tab:blue", lw=2, label="best so far (complete trials)")
    axis.annotate(
        f"best {100 * best[-1].accuracy:.2f} % (trial {best[-1].number})",
        (end, best[-1].accuracy),
        xytext=(0, 5),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize="small",
        color="tab:blue",
        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85),
    )


def best_over_trials_png(
    points: Sequence[Point], metric: str, references: Sequence[Level] = (), winner: WinnerMark | None = None
) -> bytes:
    return _png(best_over_trials_figure(points, metric, references, winner))


def measured_points(
    values: Sequence[float | None], epochs: Sequence[int] | None = None
) -> tuple[list[int], list[float]]:
    """(epochs, accuracies) of the measured epochs of a curve (epoch 1 first unless `epochs` says)."""
    epochs = epochs if epochs is not None else range(1, len(values) + 1)
    pairs = [(e, v) for e, v in zip(epochs, values, strict=True) if v is not None]
    return [e for e, _ in pairs], [v for _, v in pairs]


def curve_range(curves: Sequence[Sequence[float | None]]) -> YRange:
    """Learning-curve axis: from the lowest value after epoch 1 (epoch 1 alone can sit far lower and would
    flatten the late epochs that matter), to the highest. Curves of one or two epochs are shown whole;
    epochs that were not measured (None) are skipped."""
    long_curves = max(map(len, curves), default=0) > 2
    later = [v for c in curves for v in c[1:] if v is not None] if long_curves else []
    later = later or [v for c in curves for v in c if v is not None]
    if not later:
        return YRange(0.0, 1.0)
    low, high = min(later), max(later)
    pad = max(0.06 * (high - low), 0.0005)
    return YRange(low - pad, high + pad)


def learning_curves_figure(curves: Sequence[Curve], metric: str) -> Figure:
    figure, axis = _new()
    for curve in curves:
        style = "--" if curve.label.startswith("iteration") else "-"
        epochs, values = measured_points(curve.values)
        axis.plot(epochs, values, style, marker=".", label=curve.label)
    span = curve_range([c.values for c in curves])
    clipped = sum(any(v is not None and v < span.low for v in c.values) for c in curves)
    if clipped:
        axis.text(
            0.01,
            0.98,
            f"{clipped} of {len(curves)} curves start below {100 * span.low:.2f} % at epoch 1",
            transform=axis.transAxes,
            va="top",
            fontsize="small",
            color="0.35",
        )
    axis.set_xlabel("epoch")
    _integer_x(axis, 0.5, max((len(c.values) for c in curves), default=1) + 0.5)
    axis.set_title(f"{metric} per epoch")
    _accuracy_axis(axis, metric, span)
    axis.legend(fontsize="small", loc="lower right", ncol=2)
    figure.tight_layout()
    return figure


def learning_curves_png(curves: Sequence[Curve], metric: str) -> bytes:
    return _png(learning_curves_figure(curves, metric))


def importances_png(importances: dict[str, float]) -> bytes:
    """Horizontal bars, most important on top."""
    figure, axis = plt.subplots(figsize=(SIZE[0], max(2.5, 0.35 * len(importances) + 1)), dpi=DPI)
    names = list(importances)[::-1]
    axis.barh(names, [importances[n] for n in names], color="tab:blue")
    axis.set_xlabel("importance (PED-ANOVA, normalised)")
    axis.set_title("hyperparameter importances")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return _png(figure)
