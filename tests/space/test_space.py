"""The search space: draws stay buildable and within budget, the iterations are points, bad files fail."""

from __future__ import annotations

from tests.helpers import REPO  # isort: skip

import random
from dataclasses import replace

import optuna
import pytest

from mnist_arch import ITERATIONS, ArchConfig, UsageError, build_model, count_params
from mnist_arch.references import REFERENCES
from space import SearchSpace, check_budget, feasible_share, reachable_params, require_reachable
from space.budget import draw_stats
from space.space import FILL

RECIPE_ARCH = (
    (REPO / "space" / "recipe.toml")
    .read_text()
    .split("[regularization]")[0]
    .replace("transition = false\n", "")
)


@pytest.fixture(scope="module")
def default_space() -> SearchSpace:
    return SearchSpace.load()


def replay(space: SearchSpace, params: dict) -> object:
    """The config `suggest` draws from enqueued `params`."""
    study = optuna.create_study()
    study.enqueue_trial(params)
    return space.suggest(study.ask())


@pytest.mark.parametrize("max_params", [8088, 9000])
def test_the_three_iterations_lie_inside_the_default_space(max_params: int) -> None:
    space = SearchSpace.load(max_params=max_params)
    for iteration in ITERATIONS:
        assert space.outside(iteration.config) == [], iteration.name
        # Replaying its parameters through Optuna gives back the iteration's exact config.
        assert replay(space, space.params_for(iteration.config)) == iteration.config


def test_at_8000_iteration_3_is_a_point_and_the_8088_ones_are_outside(default_space: SearchSpace) -> None:
    third = ITERATIONS[2].config
    assert default_space.max_params == 8000 and count_params(third.arch) == 7560
    assert default_space.outside(third) == []
    params = default_space.params_for(third)
    assert "block2_width_5" not in params and 0 < params["block2_fill_5"] <= 1
    assert replay(default_space, params) == third
    for iteration in ITERATIONS[:2]:
        assert count_params(iteration.config.arch) == 8088
        reasons = default_space.outside(iteration.config)
        assert any("that fits 8,000 parameters" in reason for reason in reasons), reasons


def test_every_reference_is_a_point_of_the_default_space_with_its_published_count() -> None:
    for reference in REFERENCES:
        assert count_params(reference.config.arch) == reference.published_params, reference.name
        space = SearchSpace.load(max_params=max(8000, reference.published_params), epochs=reference.epochs)
        assert space.outside(reference.config) == [], reference.name
        assert replay(space, space.params_for(reference.config)) == reference.config, reference.name
    # and the check can fail: a reference with a width the space does not draw is outside
    wide = REFERENCES[-1].config
    stages = (replace(wide.arch.stages[0], widths=(40, 10, 10)), *wide.arch.stages[1:])
    assert SearchSpace.load().outside(replace(wide, arch=replace(wide.arch, stages=stages)))


def test_lr_decay_at_round_trips_the_iterations_at_15_epochs(default_space: SearchSpace) -> None:
    assert default_space.epochs == 15
    starts = {it.name: it.config.train.lr_decay_start for it in ITERATIONS}
    assert starts == {"iteration-1": 1, "iteration-2": 8, "iteration-3": 8}
    for iteration in ITERATIONS:
        fraction = default_space.params_for(iteration.config)["lr_decay_at"]
        assert fraction == pytest.approx((starts[iteration.name] - 1) / 15)
    study = optuna.create_study()
    study.enqueue_trial({"lr_decay_at": 7 / 15})
    assert default_space.suggest(study.ask()).train.lr_decay_start == 8


def test_lr_decay_at_means_the_same_share_at_every_epoch_budget(default_space: SearchSpace) -> None:
    rng = random.Random(2)
    for epochs in (4, 15, 30):
        space = default_space.with_budget(epochs=epochs)
        recipes = [space.random_config(rng).train for _ in range(300)]
        starts = [recipe.lr_decay_start for recipe in recipes if not recipe.lr_knots]
        # lr_decay_at in [0, 0.8]: from the first epoch to 1 + round(0.8 * epochs)
        assert min(starts) == 1 and max(starts) == 1 + round(0.8 * epochs)
    # iteration 3's decay from epoch 8 of 15 is outside a 4-epoch space: 8 > 1 + 0.8 * 4
    assert default_space.with_budget(epochs=4).outside(ITERATIONS[2].config)


def narrowest(space: SearchSpace, arch: ArchConfig) -> ArchConfig:
    """`arch` with every width at its dimension's low."""
    stages = tuple(
        replace(stage, widths=(space.dimensions[f"block{n}_width"].low,) * len(stage.widths))
        for n, stage in enumerate(arch.stages, start=1)
    )
    return replace(arch, stages=stages)


def test_fill_never_exceeds_the_budget_when_the_narrowest_widths_fit() -> None:
    rng = random.Random(7)
    for max_params in (3000, 5000, 8000, 12000):
        space = SearchSpace.load(max_params=max_params)
        for _ in range(150):
            arch = space.random_config(rng).arch
            # over budget only where even the narrowest widths are (deep stages, biases): rejected
            assert count_params(arch) <= max_params or (
                count_params(narrowest(space, arch)) > max_params and arch == narrowest(space, arch)
            )


def test_fill_one_is_the_widest_width_that_fits(default_space: SearchSpace) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    for _ in range(40):
        trial = study.ask()
        default_space.suggest(trial)
        fills = sorted(name for name in trial.params if "_fill" in name)
        last = max(fills, key=lambda name: (name.split("_")[0], int(name.rsplit("_", 1)[1])))
        pinned = optuna.create_study()
        pinned.enqueue_trial({**trial.params, last: 1.0})
        widest = default_space.suggest(pinned.ask()).arch
        block, conv = int(last[5]), int(last.rsplit("_", 1)[1])
        stages = list(widest.stages)
        widths = list(stages[block - 1].widths)
        widths[conv - 1] += 1
        stages[block - 1] = replace(stages[block - 1], widths=tuple(widths))
        wider = replace(widest, stages=tuple(stages))
        at_top = widths[conv - 1] - 1 == default_space.dimensions[f"block{block}_width"].high
        assert count_params(widest) <= 8000 or widest == narrowest(default_space, widest)
        # one channel more on the last filled conv no longer fits: the fill was at the budget wall
        assert count_params(wider) > 8000 or at_top


def test_nearly_every_draw_fits_with_fill_and_fewer_without(tmp_path) -> None:
    # Measured (mnist-arch space): every one of 1,000 draws fits 8,000 with fills, about half without.
    stats = draw_stats(SearchSpace.load(), 8000, draws=400)
    assert stats.feasible >= 0.9
    assert stats.at_wall > 0.07
    path = tmp_path / "plain.toml"
    path.write_text("[architecture]\nbudget_fill = false\n")
    plain = SearchSpace.load(path)
    assert 0.2 < draw_stats(plain, 8000, draws=400).feasible < 0.8


def test_fill_turned_off_draws_widths_as_before(tmp_path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text("[architecture]\nbudget_fill = false\nper_layer_widths = false\n")
    plain = SearchSpace.load(path)
    assert not plain.fills_block2
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    config = plain.suggest(trial)
    assert FILL not in trial.params and trial.params["block2_width"] == config.arch.block2[0]
    # over-budget configs are points again: iteration 1 at 8,000 parameters
    first = ITERATIONS[0].config
    assert plain.outside(first) == []
    assert replay(plain, plain.params_for(first)) == first


def test_one_width_per_block_draws_one_fill_per_block(tmp_path) -> None:
    path = tmp_path / "per_block.toml"
    path.write_text("[architecture]\nper_layer_widths = false\nstages = 2\n")
    space = SearchSpace.load(path, max_params=8088)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(30):
        trial = study.ask()
        arch = space.suggest(trial).arch
        assert {"block1_fill", FILL} <= set(trial.params) and "block2_width" not in trial.params
        assert len(set(arch.block2)) == 1
    for iteration in ITERATIONS:
        assert space.outside(iteration.config) == []
        assert replay(space, space.params_for(iteration.config)) == iteration.config


def test_random_draws_that_would_train_fit_the_budget_exactly(default_space: SearchSpace) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trained, rejected = 0, 0
    for _ in range(1000):
        config = default_space.suggest(study.ask())
        budget = check_budget(config.arch, 8000)
        if trained > 60:  # building models is the slow part; the count is checked on every draw
            assert budget.fits or not budget.fits
            trained += budget.fits
            continue
        if not budget.fits:
            rejected += 1
            continue
        trained += 1
        built = sum(p.numel() for p in build_model(config.arch).parameters())
        assert built == budget.n_params <= 8000
    assert trained > 900  # the fills keep (nearly) every draw under the budget


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
    assert 0.9 < share <= 1.0
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
        assert "block2_fill_1" in trial.params and "block1_width" not in trial.params
        assert len(config.arch.stages[1].widths) == trial.params["convs_after_pool"]


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
        ('[architecture]\norder = "bn_first"\n', "'architecture.order' = 'bn_first' is not one of"),
        ("[architecture]\nstage3_kernel = {low = 1, high = 3}\n", "not a range"),
        ("[budget]\nmax_params = -5\n", "'budget.max_params'"),
        ("[budget]\nepochs = 0\n", "'budget.epochs'"),
        ("[architecture]\nbudget_fill = 1\n", "'architecture.budget_fill'"),
        ("[schedule]\nlr_decay_start = 8\n", "unknown key 'schedule.lr_decay_start'"),
        ("[schedule]\nlr_decay_at = {low = 0.2, high = 1.5}\n", "'schedule.lr_decay_at'"),
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
