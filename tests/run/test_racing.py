"""Racing confirmation: successive halving over seeds, stored runs reused, the winner from the last round."""

from __future__ import annotations

from dataclasses import replace

import optuna
import torch

from mnist_arch.iterations import ITERATIONS
from mnist_arch.model import count_params
from mnist_arch.trainer import DeviceData
from search.results.confirmations import attr_key, stored_runs
from search.results.winner import trial_label
from search.run.confirmation import confirm_winner
from search.run.sizing import race_cost, race_plan


def test_race_plans_halve_the_models_and_double_the_seeds() -> None:
    assert race_plan(5, 2, 2) == [(5, 2), (3, 4)]
    assert race_plan(16, 2, 3) == [(16, 2), (8, 4), (4, 8)]
    assert race_plan(5, 3, 1) == [(5, 3)]  # one round: the plain confirmation
    assert race_plan(2, 2, 4) == [(2, 2)]  # a round of one model would only confirm the winner
    assert race_plan(4, 2, 3) == [(4, 2), (2, 4)]
    assert race_cost([(5, 2), (3, 4)]) == 10 + 6  # the survivors' first two seeds are reused
    assert race_cost([(16, 2), (8, 4), (4, 8)]) == 32 + 16 + 16


def tiny_data() -> DeviceData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(256, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (256,), generator=generator)
    return DeviceData(images, labels, images[:128], labels[:128], images[128:], labels[128:])


def test_a_race_confirms_the_better_half_with_more_seeds(tmp_path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'race.db'}", direction="maximize")
    seed = ITERATIONS[2].config
    for width in (4, 6, 8):  # three small searched models
        config = replace(seed, arch=replace(seed.arch, dropout=0.0), train=replace(seed.train, batch_size=64))
        arch = replace(config.arch, stages=(replace(config.arch.stages[0], widths=(width,) * 3),))
        config = replace(config, arch=arch)
        study.add_trial(
            optuna.trial.create_trial(
                value=0.5,
                user_attrs={"config": config.to_dict(), "n_params": count_params(arch)},
            )
        )
    trials = study.get_trials()
    winner = confirm_winner(study, trials, tiny_data, seeds=1, epochs=1, subset=None, rounds=2)
    runs = {t.number: stored_runs(study, attr_key(trial_label(t.number), 1, None)) for t in trials}
    assert sorted(len(r) for r in runs.values()) == [1, 2, 2]  # plan (3 x 1, then 2 x 2)
    assert winner is not None and winner.seeds == 2 and len(winner.candidates) == 2
    dropped = next(number for number, r in runs.items() if len(r) == 1)
    assert trial_label(dropped) not in winner.candidates
    # the one dropped had the worst first-round validation accuracy
    first = {number: r["0"]["val_acc"] for number, r in runs.items()}
    assert first[dropped] == min(first.values())
