"""A short search on the CPU, with the default space, pruner and confirmation, ends with a confirmed winner
that is not worse than iteration 3 confirmed the same way, beyond the noise measured in the same run.

The bar: the winner's mean validation accuracy over seeds may fall below iteration 3's by at most two
standard errors of the difference of the two means, computed from the seed-to-seed spread that the
confirmation itself measured (with a floor of half a point, so that two lucky, identical seeds do not make
the bar zero). A search that works (a sampler that draws sensible models, a pruner that lets good trials
finish, a winner chosen by the mean over seeds rather than one run) clears it; a pruner that stops every
searched trial leaves no winner, and a winner picked by one lucky run tends to fall below it.

The scale is tiny (1,000 training images, 2 epochs, 6 trials, the top 2 and iteration 3 confirmed with 2
seeds) so that it runs in a couple of minutes on two idle cores; the GPU-sized figures come from
scripts/quality_bench.py (BENCHMARKS.md, "Search quality").
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.results.winner import confirmed_winner
from tests.helpers import run_subprocess

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop

SUBSET, EPOCHS, TRIALS, TOP, SEEDS = 1000, 2, 6, 2, 2
FLOOR = 0.005  # the least margin: half a point of validation accuracy


def margin(winner_std: float, reference_std: float, seeds: int) -> float:
    """Two standard errors of the difference of two means over `seeds` runs each."""
    return max(FLOOR, 2 * math.sqrt((winner_std**2 + reference_std**2) / seeds))


def test_short_cpu_search_ends_with_a_winner_near_iteration_3(data: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    done = run_subprocess(
        *("search", "--device", "cpu", "--storage", url, "--data", str(data), "--subset", str(SUBSET)),
        *("--epochs", str(EPOCHS), "--trials", str(TRIALS), "--seed", "0"),
        *("--confirm-top", str(TOP), "--confirm-seeds", str(SEEDS)),
    )
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="mnist-arch", storage=url)
    searched = [t for t in study.get_trials() if "baseline" not in t.user_attrs]
    complete = [t for t in searched if t.state == TrialState.COMPLETE]
    assert len(complete) >= TOP, f"the default pruner left fewer than {TOP} complete searched trials"

    winner = confirmed_winner(study)
    assert winner is not None and winner.reference is not None
    assert winner.reference.label == "iteration-3"
    assert winner.seeds == SEEDS and winner.epochs == EPOCHS
    bar = winner.reference.val_mean - margin(winner.val_std, winner.reference.val_std, SEEDS)
    assert winner.val_mean >= bar, (
        f"winner {winner.label} val {winner.val_mean:.4f} ± {winner.val_std:.4f} below iteration-3's "
        f"{winner.reference.val_mean:.4f} ± {winner.reference.val_std:.4f} beyond the noise ({bar:.4f})"
    )
    assert "confirmed winner: trial" in " ".join(done.stdout.split())


def test_the_margin_is_two_standard_errors_with_a_floor() -> None:
    assert margin(0.0, 0.0, 2) == FLOOR
    assert math.isclose(margin(0.01, 0.01, 2), 0.02)
