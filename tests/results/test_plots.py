"""The report's plots: Pareto front, accuracy axes that follow the data, labels apart, ticks distinct."""

from __future__ import annotations

import itertools
import random
import re

import matplotlib.pyplot as plt
import optuna
import pytest
from matplotlib.figure import Figure
from optuna.trial import TrialState, create_trial

from mnist_arch.trainer import EpochStats
from search.results.plots import (
    Curve,
    Level,
    Point,
    WinnerMark,
    accuracy_vs_params_figure,
    best_over_trials_figure,
    curve_range,
    focus_range,
    learning_curve_figure,
    learning_curve_png,
    learning_curves_figure,
    pareto_front,
    percent_labels,
    stack_labels,
)
from search.results.report import figures, plot_points

ITERATIONS = {"iteration-1": (8088, 0.9928), "iteration-2": (8088, 0.9927), "iteration-3": (7560, 0.9942)}
WINNER = {
    "trial": 7,
    "label": "trial-7",
    "n_params": 7972,
    "val_mean": 0.9936,
    "val_std": 0.0004,
    "test_mean": 0.9931,
    "test_std": 0.0005,
    "seeds": 3,
}


def _curve(final: float, epochs: int) -> list[float]:
    """Rises from 6 points below `final` towards it, the first epoch far lower."""
    return [final - 0.06 / epoch**1.5 for epoch in range(1, epochs + 1)]


def _trial(n_params: int, final: float, epochs: int = 15, pruned: bool = False, **attrs) -> object:
    curve = _curve(final, epochs)
    user_attrs = {"n_params": n_params, "val_acc": curve[-1], "test_acc": curve[-1] - 0.0004, **attrs}
    user_attrs["val_curve"] = curve
    return create_trial(
        state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
        value=None if pruned else curve[-1],
        user_attrs=user_attrs,
        intermediate_values={e + 1: v for e, v in enumerate(curve)},
    )


def make_study(winner: dict | None = None) -> optuna.Study:
    """The three iterations, 24 searched trials within 98-99.4 %, three outliers at 60 %, five pruned
    trials, one over-budget draw."""
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for key, value in {"max_params": 8000, "objective": "val", "epochs": 15}.items():
        study.set_user_attr(key, value)
    if winner:
        study.set_user_attr("winner", winner)
    for name, (n_params, acc) in ITERATIONS.items():
        study.add_trial(_trial(n_params, acc, baseline=name))
    rng = random.Random(0)
    for _ in range(24):
        study.add_trial(_trial(rng.randint(3000, 7990), rng.uniform(0.98, 0.9938)))
    study.add_trial(_trial(7972, 0.9940))  # the best searched
    for _ in range(3):
        study.add_trial(_trial(rng.randint(2500, 4000), 0.60))
    for epochs in (3, 4, 5, 8, 11):
        study.add_trial(_trial(rng.randint(3000, 7990), rng.uniform(0.975, 0.99), epochs, pruned=True))
    rejected = {"n_params": 12000, "rejected": "over budget"}
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=rejected))
    return study


@pytest.fixture(scope="module")
def points() -> list[Point]:
    return plot_points(make_study(), "val_acc")


def _drawn(figure: Figure):  # noqa: ANN202
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def _dominated(p: Point, by: Point) -> bool:
    return (
        by.n_params <= p.n_params
        and by.accuracy >= p.accuracy
        and (by.n_params, by.accuracy) != (p.n_params, p.accuracy)
    )


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    points = [Point(rng.randint(1, 30), rng.randint(0, 20) / 20) for _ in range(rng.randint(0, 40))]
    points += points[: rng.randint(0, 3)]  # exact duplicates
    front = pareto_front(points)
    brute = [p for p in points if not any(_dominated(p, q) for q in points)]
    assert sorted(front, key=repr) == sorted(brute, key=repr)
    xs = [p.n_params for p in front]
    assert xs == sorted(xs)
    for a, b in itertools.pairwise(front):
        assert b.accuracy > a.accuracy or (a.n_params, a.accuracy) == (b.n_params, b.accuracy)


def test_focus_range_follows_the_top_and_keeps_iterations_and_best(points):
    complete = [p for p in points if not p.pruned]
    iterations = [p.accuracy for p in complete if p.label]
    span = focus_range([p.accuracy for p in points], iterations)
    best = max(p.accuracy for p in points)
    assert span.low < min(iterations) and span.high > best
    assert span.high - span.low < 0.03  # the 60 % outliers do not stretch it
    assert span.below([p.accuracy for p in complete]) >= 3


def test_focus_range_keeps_a_low_iteration_visible():
    span = focus_range([0.99 + i / 1000 for i in range(6)], keep=[0.95])
    assert span.low < 0.95 < 0.995 < span.high


def test_plot_points_take_pruned_trials_at_their_last_report(points):
    study = make_study()
    by_number = {p.number: p for p in points}
    for trial in study.trials:
        if "rejected" in trial.user_attrs:
            assert trial.number not in by_number
        elif trial.state == TrialState.PRUNED:
            last = trial.intermediate_values[max(trial.intermediate_values)]
            assert by_number[trial.number] == Point(
                trial.user_attrs["n_params"], last, None, True, trial.number
            )
    assert [p.label for p in points if p.label] == list(ITERATIONS)


@pytest.mark.parametrize("winner", [None, WINNER])
def test_labels_of_the_iterations_do_not_overlap(points, winner):
    figure = accuracy_vs_params_figure(points, 8000, "val_acc", WinnerMark.from_attr(winner, "val_acc"))
    renderer = _drawn(figure)
    labels = [t for t in figure.axes[0].texts if t.get_gid() == "label"]
    names = [t.get_text().split(":")[0] for t in labels]
    assert {"iteration-1", "iteration-2", "iteration-3"} <= set(names)
    assert any(name.startswith("confirmed trial-7") for name in names) == (winner is not None)
    boxes = [t.get_window_extent(renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    page = figure.bbox
    assert all(page.x0 <= b.x0 and b.x1 <= page.x1 and page.y0 <= b.y0 and b.y1 <= page.y1 for b in boxes)
    low, high = figure.axes[0].get_ylim()
    assert low < min(acc for _, acc in ITERATIONS.values()) and high > 0.9940
    assert high - low < 0.03


@pytest.mark.parametrize("seed", range(10))
def test_stack_labels_keep_order_without_overlap(seed):
    rng = random.Random(seed)
    anchors = [rng.choice([100.0, 300.0, rng.uniform(0, 400)]) for _ in range(rng.randint(1, 8))]
    heights = [rng.uniform(10, 30) for _ in anchors]
    centres = stack_labels(anchors, heights, gap=4, bottom=0, top=400)
    order = sorted(range(len(anchors)), key=lambda i: -anchors[i])
    for upper, lower in itertools.pairwise(order):
        assert centres[upper] - heights[upper] / 2 >= centres[lower] + heights[lower] / 2 + 4 - 1e-9
    assert all(c - h / 2 >= -1e-9 for c, h in zip(centres, heights, strict=True))


def test_percent_labels_are_distinct_and_exact():
    assert percent_labels([0.98, 0.985, 0.99]) == ["98.0 %", "98.5 %", "99.0 %"]
    assert percent_labels([0.9925, 0.995, 0.9975]) == ["99.25 %", "99.50 %", "99.75 %"]
    assert percent_labels([0.9, 0.95, 1.0]) == ["90 %", "95 %", "100 %"]


def _tick_texts(figure: Figure) -> list[str]:
    _drawn(figure)
    axis = figure.axes[0]
    low, high = axis.get_ylim()
    return [t.get_text() for t in axis.get_yticklabels() if low <= t.get_position()[1] <= high]


def test_rendered_tick_labels_do_not_repeat(points):
    study = make_study()
    curves = [Curve(f"trial {t.number}", t.user_attrs["val_curve"]) for t in study.trials[:6]]
    winner = WinnerMark.from_attr(WINNER, "val_acc")
    for figure in (
        accuracy_vs_params_figure(points, 8000, "val_acc", winner),
        best_over_trials_figure(points, "val_acc", [Level("iteration-3", 0.9942)], winner),
        best_over_trials_figure(points[:4], "val_acc"),  # one searched trial: a tiny range
        learning_curves_figure(curves, "val_acc"),
    ):
        texts = _tick_texts(figure)
        assert len(texts) >= 3 and len(set(texts)) == len(texts), texts


def _x_tick_texts(figure: Figure) -> list[str]:
    _drawn(figure)
    axis = figure.axes[0]
    low, high = axis.get_xlim()
    return [t.get_text() for t in axis.get_xticklabels() if low <= t.get_position()[0] <= high]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 15, 60])
def test_whole_number_axes_show_distinct_whole_numbers(points, count):
    """Epochs and trial numbers: every tick a distinct whole number, however few the values."""
    curve = _curve(0.99, count)
    history = [EpochStats(e, 0.01, 0.1, v, v - 0.001, 1.0) for e, v in enumerate(curve, start=1)]
    searched = points[:3] + [Point(5000 + n, 0.98 + n / 1e4, None, n % 3 > 0, n) for n in range(3, 3 + count)]
    winner = WinnerMark.from_attr(WINNER, "val_acc")
    for figure in (
        learning_curve_figure(history, "trial 1"),
        learning_curves_figure([Curve("trial 1", curve)], "val_acc"),
        best_over_trials_figure(searched, "val_acc"),
        best_over_trials_figure(searched, "val_acc", winner=winner),
    ):
        texts = _x_tick_texts(figure)
        plt.close(figure)
        assert texts and all(re.fullmatch(r"\d+", t) for t in texts), texts
        assert len(set(texts)) == len(texts), texts


def test_learning_curve_axis_starts_after_epoch_one():
    curves = [_curve(0.993, 15), _curve(0.990, 15)]
    span = curve_range(curves)
    assert min(c[0] for c in curves) < span.low < min(min(c[1:]) for c in curves)
    assert span.high > 0.993
    assert curve_range([[0.9]]).low < 0.9  # one epoch: that epoch decides


def test_winner_from_attr():
    assert WinnerMark.from_attr(None, "val_acc") is None
    assert WinnerMark.from_attr({"trial": 3}, "val_acc") is None
    val = WinnerMark.from_attr(WINNER, "val_acc")
    assert (val.label, val.n_params, val.mean, val.std, val.seeds) == ("trial-7", 7972, 0.9936, 0.0004, 3)
    assert val.text() == "confirmed trial-7: 99.36 ± 0.04 % (3 seeds)"
    only_test = {k: v for k, v in WINNER.items() if not k.startswith("val")}
    assert "test accuracy" in WinnerMark.from_attr(only_test, "val_acc").text()


@pytest.mark.parametrize("winner", [None, WINNER])
def test_report_figures_render(winner):
    figs = {f.file: f for f in figures(make_study(winner), [])}
    for name in ("accuracy_vs_params.png", "best_over_trials.png"):
        assert figs[name].png.startswith(b"\x89PNG")
    history = [EpochStats(e, 0.01, 0.1, v, v, 1.0) for e, v in enumerate(_curve(0.99, 4), start=1)]
    assert learning_curve_png(history, "trial 1").startswith(b"\x89PNG")
