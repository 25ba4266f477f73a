"""The confirmation sized to the search: the largest size within half its model-epochs, never more than
announced, and what the command line gives wins."""

from __future__ import annotations

import optuna

from search.run.settings import SearchSettings
from search.run.sizing import (
    CONFIRM_SHARE,
    CONFIRM_SIZES,
    ConfirmSize,
    cost_text,
    final_size,
    planned_size,
    size_for,
)


def test_sizes_run_largest_first_and_count_their_runs() -> None:
    runs = [size.runs(reference=True) for size in CONFIRM_SIZES]
    assert runs == sorted(runs, reverse=True) and runs[0] == 20  # 5 x 2, best 3 x 4, iteration-3 x 4
    assert all(size.seeds >= 2 for size in CONFIRM_SIZES[:-1])  # a mean and a spread until the last
    assert ConfirmSize(5, 2, 2).runs(reference=False) == 16
    assert ConfirmSize(3, 2, 1).text() == "top 3 x 2 seeds"
    assert ConfirmSize(5, 2, 2).text() == "top 5 x 2 seeds, then the best 3 x 4"


def test_the_largest_size_within_half_of_the_search() -> None:
    for model_epochs in (1, 10, 40, 80, 200, 750, 5000):
        for epochs in (1, 4, 15):
            size = size_for(model_epochs, epochs, reference=True)
            fits = [s for s in CONFIRM_SIZES if s.runs(True) * epochs <= CONFIRM_SHARE * model_epochs]
            assert size == (fits[0] if fits else CONFIRM_SIZES[-1]), (model_epochs, epochs)
    assert size_for(50 * 15, 15, reference=True) == ConfirmSize(5, 2, 2)  # a full search keeps the default
    assert size_for(20 * 4, 4, reference=True) == ConfirmSize(3, 2, 1)  # 8 runs of 4 = 32 <= 40


def test_given_values_win_and_fill_the_rest_with_the_defaults() -> None:
    assert planned_size(SearchSettings(confirm_top=0), True) is None
    assert planned_size(SearchSettings(confirm_top=3), True) == ConfirmSize(3, 2, 2)
    assert planned_size(SearchSettings(confirm_seeds=1, trials=4, epochs=1), True) == ConfirmSize(5, 1, 2)
    assert planned_size(SearchSettings(trials=4, epochs=1), True) == CONFIRM_SIZES[-1]


def _study_with_trained_epochs(epochs_run: list[int]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for epochs in epochs_run:
        trial = study.ask()
        trial.set_user_attr("epochs_run", epochs)
        study.tell(trial, 0.5)
    return study


def test_after_the_search_the_size_follows_what_it_trained_and_never_grows() -> None:
    settings = SearchSettings(trials=50, epochs=15)
    planned = planned_size(settings, True)
    assert planned == ConfirmSize(5, 2, 2)
    # a timeout stopped it after 20 trials, most of them pruned: 120 model-epochs allow 4 runs of 15
    cut_short = _study_with_trained_epochs([3] * 15 + [15] * 5)
    assert final_size(settings, planned, cut_short, True) == ConfirmSize(1, 2, 1)
    # a resumed study that trained far more than announced still gets the announced size
    assert final_size(settings, planned, _study_with_trained_epochs([15] * 200), True) == planned
    given = SearchSettings(trials=50, epochs=15, confirm_top=4)
    assert final_size(given, planned_size(given, True), cut_short, True) == ConfirmSize(4, 2, 2)


def test_the_cost_is_told_in_runs_and_model_epochs() -> None:
    text = cost_text(ConfirmSize(3, 2, 1), 4, True, 80)
    assert text == (
        "top 3 x 2 seeds with iteration-3: 8 runs of 4 epochs = 32 model-epochs (40 % of the search's 80)"
    )
