"""The search loop: ask a trial, run the objective, tell the result, until enough trials trained."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_arch.errors import UsageError
from mnist_arch.trainer import DivergedError
from search.objective import OverBudget, TrialContext, objective

MAX_CONSECUTIVE_REJECTS = 1000


def is_trained(trial: FrozenTrial) -> bool:
    """Complete or pruned after training: what --trials counts (over-budget draws are not)."""
    trained_states = (TrialState.COMPLETE, TrialState.PRUNED)
    return trial.state in trained_states and "rejected" not in trial.user_attrs


def trained_count(study: optuna.Study) -> int:
    return sum(is_trained(t) for t in study.get_trials(deepcopy=False))


@dataclass
class LoopStats:
    trained: int = 0
    rejected: int = 0
    pruned: int = 0


def run_search(
    study: optuna.Study,
    ctx: TrialContext,
    *,
    n_trials: int,
    timeout: float | None = None,
    on_trial_done: Callable[[FrozenTrial], None] | None = None,
) -> LoopStats:
    """Train trials until the study holds `n_trials` trained ones (or `timeout` seconds pass)."""
    stats = LoopStats()
    start = time.monotonic()
    consecutive_rejects = 0
    while trained_count(study) < n_trials:
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        trial = study.ask()
        try:
            value = objective(trial, ctx)
        except OverBudget:
            study.tell(trial, state=TrialState.PRUNED)
            stats.rejected += 1
            consecutive_rejects += 1
            if consecutive_rejects >= MAX_CONSECUTIVE_REJECTS:
                raise UsageError(
                    f"{MAX_CONSECUTIVE_REJECTS} draws in a row were over --max-params "
                    f"{ctx.max_params:,}; raise the budget or narrow the space"
                ) from None
            continue
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED)
            stats.pruned += 1
        except DivergedError as error:
            trial.set_user_attr("fail_reason", "diverged")
            trial.set_user_attr("fail_detail", str(error))
            frozen = study.tell(trial, state=TrialState.PRUNED)
        except BaseException as error:
            reason = "interrupted" if isinstance(error, KeyboardInterrupt) else type(error).__name__
            trial.set_user_attr("fail_reason", reason)
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            frozen = study.tell(trial, value)
        consecutive_rejects = 0
        stats.trained += 1
        if on_trial_done is not None:
            on_trial_done(frozen)
    return stats
