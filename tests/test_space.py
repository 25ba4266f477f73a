"""The search space: draws stay buildable and within budget, the iterations are points, bad files fail."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from mnist_arch import ITERATIONS, UsageError, build_model, count_params
from space import SearchSpace, check_budget, feasible_share, reachable_params, require_reachable

REPO = Path(__file__).resolve().parents[1]
RECIPE_ARCH = (
    "[architecture]\nconvs_before_pool = 3\nconvs_after_pool = 5\nblock1_width = 8\nblock2_width = 12\n"
    "pool_before_gap = true\nlast_dropout = false\n"
)


@pytest.fixture(scope="module")
def default_space() -> SearchSpace:
    return SearchSpace.load()


def test_the_three_iterations_lie_inside_the_default_space(default_space: SearchSpace) -> None:
    for iteration in ITERATIONS:
        assert default_space.outside(iteration.config) == [], iteration.name
        params = default_space.params_for(iteration.config)
        # Replaying those parameters through Optuna gives back the iteration's exact config.
        study = optuna.create_study()
        study.enqueue_trial(params)
        assert default_space.suggest(study.ask()) == iteration.config


def test_random_draws_that_would_train_fit_the_budget_exactly(default_space: SearchSpace) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trained, rejected = 0, 0
    for _ in range(1000):
        config = default_space.suggest(study.ask())
        budget = check_budget(config.arch, 8000)
        if not budget.fits:
            rejected += 1
            continue
        trained += 1
        built = sum(p.numel() for p in build_model(config.arch).parameters())
        assert built == budget.n_params <= 8000
    assert trained > 200 and rejected > 0  # both sides of the budget are exercised


def test_predicted_count_equals_built_count_over_budget_too(default_space: SearchSpace) -> None:
    rng = random.Random(3)
    for _ in range(200):
        arch = default_space.random_config(rng).arch
        assert count_params(arch) == sum(p.numel() for p in build_model(arch).parameters())


def test_reachable_counts_bound_every_draw(default_space: SearchSpace) -> None:
    smallest, largest = reachable_params(default_space)
    rng = random.Random(5)
    counts = [count_params(default_space.random_config(rng).arch) for _ in range(500)]
    assert smallest <= min(counts) and max(counts) <= largest
    assert smallest < 8000 < largest
    share = feasible_share(default_space, 8000)
    assert 0.2 < share < 0.9
    assert feasible_share(default_space, largest) == 1.0


def test_budget_below_the_smallest_model_is_rejected(default_space: SearchSpace) -> None:
    smallest, _ = reachable_params(default_space)
    require_reachable(default_space, smallest)
    with pytest.raises(UsageError, match="below the smallest model"):
        require_reachable(default_space, smallest - 1)


def test_override_file_narrows_the_space(tmp_path) -> None:
    path = tmp_path / "narrow.toml"
    path.write_text(
        "[architecture]\nblock1_width = 8\nconvs_before_pool = 3\nper_layer_widths = true\n"
        "[optimizer]\nbatch_size = {choices = [128]}\n"
    )
    space = SearchSpace.load(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        config = space.suggest(trial)
        assert config.arch.block1 == (8, 8, 8) and config.train.batch_size == 128
        assert "block2_width_1" in trial.params and "block1_width" not in trial.params
        assert len(config.arch.block2) == trial.params["convs_after_pool"]


def test_a_space_fixes_the_architecture_only_when_every_layer_choice_is_fixed(tmp_path) -> None:
    assert not SearchSpace.load().fixed_architecture
    recipe = SearchSpace.load(REPO / "space" / "recipe.toml")
    assert recipe.fixed_architecture
    layers = {replace(recipe.random_config(random.Random(seed)).arch, dropout=0) for seed in range(20)}
    assert len(layers) == 1  # dropout, a regularization dimension, is still searched
    path = tmp_path / "one_choice.toml"
    path.write_text(RECIPE_ARCH + "transition = {choices = [true, true]}\n")
    assert SearchSpace.load(path).fixed_architecture
    path.write_text(RECIPE_ARCH + "transition = {choices = [false, true]}\n")
    assert not SearchSpace.load(path).fixed_architecture


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[architecture]\nwidth = 3\n", "unknown key 'architecture.width'"),
        ("[optimiser]\nlr = 0.1\n", "unknown table [optimiser]"),
        ("[optimizer]\nlr = {low = 0.3, high = 0.1}\n", "'optimizer.lr' has low 0.3 > high 0.1"),
        ("[optimizer]\nbatch_size = {choices = []}\n", "'optimizer.batch_size' has an empty choices"),
        ("[architecture]\nconvs_after_pool = {low = 3, high = 7}\n", "below 1x1"),
        ("[architecture]\nblock1_width = {low = 4.5, high = 8}\n", "'architecture.block1_width' must be"),
        ("[optimizer]\nlr = {low = 0.0, high = 0.1, log = true}\n", "'optimizer.lr'"),
        ("[architecture]\ntransition = {low = 0, high = 1}\n", "'architecture.transition'"),
        ("[budget]\nmax_params = -5\n", "'budget.max_params'"),
        ("not toml = = =\n", "not valid TOML"),
    ],
)
def test_invalid_space_files_name_the_key(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as error:
        SearchSpace.load(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
