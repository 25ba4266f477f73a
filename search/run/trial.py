"""One trial's steps, as the scheduler takes them: config from the trial and budget check
(`prepare_trial`), each epoch reported (`epoch_reporter`), results stored and the value returned
(`finish_trial`). The training itself is the engine's (search.run.engine)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.artifacts import FileSystemArtifactStore

from mnist_arch.config import CandidateConfig
from mnist_arch.model import receptive_field
from mnist_arch.notation import describe
from mnist_arch.references import get_reference
from mnist_arch.trainer import DeviceData, EpochStats, TrainResult
from search.export.artifacts import artifact_dir_for, note_trial, open_artifact_store, publish_trial
from search.run.settings import SearchSettings
from space.budget import check_budget
from space.space import SearchSpace

CONSTRAINT = "params_over_budget"


class OverBudget(Exception):
    """The trial's config is over the parameter budget: it is recorded, never trained."""


@dataclass
class TrialContext:
    """What every trial of one search process shares: where configs are drawn, the data, the rules."""

    space: SearchSpace  # configs are drawn from it (baselines are given)
    data: DeviceData  # the training, validation and test images, on the device the trials train on
    epochs: int  # epochs per trial (a pruned trial stops earlier)
    max_params: int  # parameter budget: a searched draw above it is rejected untrained
    objective: str  # "val" | "test": the accuracy reported each epoch and returned as the trial's value
    seed: int  # the search's seed; trial N trains with seed + N
    # called after each epoch is reported: (trial, its config, the epoch's stats)
    on_epoch: Callable[[optuna.Trial, CandidateConfig, EpochStats], None] | None = None
    artifacts: FileSystemArtifactStore | None = None  # where complete trials keep weights, table, curve

    @classmethod
    def from_settings(
        cls,
        settings: SearchSettings,
        space: SearchSpace,
        data: DeviceData,
        on_epoch: Callable[[optuna.Trial, CandidateConfig, EpochStats], None] | None = None,
    ) -> TrialContext:
        """The context of a search with `settings`, in this process or in a worker."""
        return cls(
            space,
            data,
            settings.epochs,
            space.max_params,
            settings.objective,
            settings.seed,
            on_epoch=on_epoch,
            artifacts=open_artifact_store(
                artifact_dir_for(settings.storage, settings.artifacts), create=True
            ),
        )


def trial_config(trial: optuna.Trial, space: SearchSpace) -> CandidateConfig:
    """The baseline's own config for a queued iteration, else a draw from the space."""
    baseline = trial.user_attrs.get("baseline")
    if baseline is None:
        return space.suggest(trial)
    config = get_reference(baseline).config
    if not space.outside(config):
        space.suggest(trial)  # records the baseline's point so the sampler learns from it
    return config


@dataclass(frozen=True)
class PreparedTrial:
    """What training one trial needs, once its config is drawn and within budget."""

    config: CandidateConfig
    seed: int
    key: str  # "val_acc" | "test_acc": the value reported and returned


def prepare_trial(trial: optuna.Trial, ctx: TrialContext) -> PreparedTrial:
    """Config from the trial, budget check, descriptive attrs; raises OverBudget for a rejected draw."""
    config = trial_config(trial, ctx.space)
    budget = check_budget(config.arch, ctx.max_params)
    trial.set_user_attr("role", "baseline" if "baseline" in trial.user_attrs else "searched")
    trial.set_user_attr("n_params", budget.n_params)
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr("receptive_field", receptive_field(config.arch))
    trial.set_user_attr("architecture", describe(config.arch))
    trial.set_constraint(CONSTRAINT, budget.excess)
    if not budget.fits and "baseline" not in trial.user_attrs:
        trial.set_user_attr("rejected", budget.reason)
        raise OverBudget(budget.reason)

    seed = ctx.seed + trial.number
    trial.set_user_attr("seed", seed)
    trial.set_user_attr("device", ctx.data.train_x.device.type)  # `evaluate` reuses it
    return PreparedTrial(config, seed, "val_acc" if ctx.objective == "val" else "test_acc")


def epoch_reporter(
    trial: optuna.Trial, ctx: TrialContext, prepared: PreparedTrial
) -> Callable[[EpochStats], bool]:
    """Reports an epoch's accuracy to the trial where it was measured; returns True where the pruner
    stops it (it decides only on a reported epoch)."""

    def report(stats: EpochStats) -> bool:
        value = getattr(stats, prepared.key)
        if value is not None:
            trial.report(value, stats.epoch)
        if ctx.on_epoch is not None:
            ctx.on_epoch(trial, prepared.config, stats)
        return value is not None and trial.should_prune()

    return report


def finish_trial(
    trial: optuna.Trial, ctx: TrialContext, prepared: PreparedTrial, result: TrainResult
) -> float:
    """Result attrs; the objective value, or TrialPruned where the run was stopped early."""
    last = result.history[-1]
    trial.set_user_attr("val_acc", last.val_acc)
    if last.test_acc is not None:  # a pruned trial stops before its test is measured
        trial.set_user_attr("test_acc", last.test_acc)
    trial.set_user_attr("epochs_run", len(result.history))
    trial.set_user_attr("sec_per_epoch", round(result.sec_per_epoch, 4))
    trial.set_user_attr("train_seconds", round(sum(e.seconds for e in result.history), 3))
    trial.set_user_attr("eval_seconds", round(sum(e.eval_seconds for e in result.history), 3))
    trial.set_user_attr("val_curve", [e.val_acc for e in result.history])
    trial.set_user_attr("test_curve", [e.test_acc for e in result.history])
    trial.set_user_attr("cuda_graph", result.graph)
    note_trial(trial, headline(trial, ctx.epochs, result), prepared.config)
    if result.stopped_early:
        raise optuna.TrialPruned(f"pruned after epoch {last.epoch}")
    publish_trial(trial, prepared.config, result, ctx.artifacts)
    return getattr(last, prepared.key)


def headline(trial: optuna.Trial, epochs: int, result: TrainResult) -> str:
    """The first line of a trial's dashboard note, e.g.
    '**baseline iteration-3** · 7,560 params · val 99.12 % · test 99.30 % · 15 epochs'."""
    role = f"baseline {trial.user_attrs['baseline']}" if "baseline" in trial.user_attrs else "searched"
    last = result.history[-1]
    run = (
        f"pruned after epoch {last.epoch} of {epochs}"
        if result.stopped_early
        else f"{len(result.history)} epoch{'' if len(result.history) == 1 else 's'}"
    )
    test = "" if last.test_acc is None else f"test {100 * last.test_acc:.2f} % · "
    params = f"{trial.user_attrs['n_params']:,} params"
    return f"**{role}** · {params} · val {100 * last.val_acc:.2f} % · {test}{run}"
