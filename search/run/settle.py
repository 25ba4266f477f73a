"""How a trial ends, told to the storage, and the counts a search keeps of its trials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from mnist_arch.errors import UsageError
from mnist_arch.trainer import DivergedError
from search.study.trials import is_trained

MAX_CONSECUTIVE_REJECTS = 1000

# fail_reason values (user attribute; the result table and the dashboard show it)
DIVERGED = "diverged"
OUT_OF_MEMORY = "out of memory"
INTERRUPTED = "interrupted"


class Rejected(Exception):
    """Told for an over-budget draw: PRUNED with the 'rejected' attr, not counted."""


@dataclass(frozen=True)
class Outcome:
    """How one trial ended, as told to the storage."""

    kind: str  # "complete" | "pruned" | "rejected" | "diverged" | "out of memory" | "interrupted"
    #            | "lost" (another worker failed it as stale first) | an unexpected error's type name
    trial: FrozenTrial | None  # the stored trial; None when "lost"
    fatal: bool = False  # the search must stop: interrupted, or an unexpected error

    @property
    def trained(self) -> bool:
        """Counts towards --trials."""
        return self.trial is not None and is_trained(self.trial)


def tell_outcome(
    study: optuna.Study, trial: optuna.Trial, value: float | None = None, error: BaseException | None = None
) -> Outcome:
    """Tell the storage how `trial` ended: with `value` (complete) or the `error` that ended it.

    Rejected (over budget) -> PRUNED, not counted ('rejected' attr set by the objective); TrialPruned ->
    PRUNED; DivergedError -> PRUNED, fail_reason 'diverged' (it trained, and the sampler should learn
    that this region is bad: TPE ignores FAILED trials but ranks PRUNED ones last);
    torch.OutOfMemoryError -> FAIL 'out of memory'; KeyboardInterrupt (incl. SIGTERM, see
    search.run.interrupts) -> FAIL 'interrupted', fatal; anything else -> FAIL with its type name, fatal.
    The caller re-raises `error` when the outcome is fatal.
    """
    kind, state, fatal = "complete", TrialState.COMPLETE, False
    if error is None:
        pass
    elif isinstance(error, Rejected):
        kind, state = "rejected", TrialState.PRUNED
    elif isinstance(error, optuna.TrialPruned):
        kind, state = "pruned", TrialState.PRUNED
    elif isinstance(error, DivergedError):
        kind, state = DIVERGED, TrialState.PRUNED
    elif isinstance(error, torch.OutOfMemoryError):
        kind, state = OUT_OF_MEMORY, TrialState.FAIL
    elif isinstance(error, KeyboardInterrupt):
        kind, state, fatal = INTERRUPTED, TrialState.FAIL, True
    else:
        kind, state, fatal = type(error).__name__, TrialState.FAIL, True
    try:
        if kind not in ("complete", "pruned", "rejected"):
            trial.set_user_attr("fail_reason", kind)
            if str(error):
                trial.set_user_attr("fail_detail", str(error).strip().splitlines()[0][:500])
        frozen = study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Its heartbeat went quiet for longer than the grace period (a stalled worker), so another
        # worker failed and requeued it: the result is dropped, the retry counts.
        return Outcome("lost", None, fatal)
    return Outcome(kind, frozen, fatal)


@dataclass
class SearchStats:
    """The counts of one process's search loop (a worker's own; trials of other workers are not in them).

    Counts are trials unless named otherwise."""

    trained: int = 0  # complete or pruned: they count towards --trials
    rejected: int = 0  # over-budget draws, told and never trained
    pruned: int = 0  # of the trained ones, stopped early by the pruner
    diverged: int = 0  # pruned as diverged (counted: they trained)
    failed: int = 0  # out of memory (the search went on)
    given_back: int = 0  # asked while the study was already full
    requeued: int = 0  # trials of killed workers this worker failed and queued again
    rejected_in_a_row: int = 0  # the current streak of rejected draws
    model_epochs: int = 0  # epochs trained, over all trials
    seconds: float = 0.0  # wall time of the loop
    max_in_flight: int = 0  # most trials trained at once
    bytes_per_trial: int | None = None  # CUDA: peak device memory of the first trial, alone
    bank_steps: int = 0  # fused engine: steps of banks, and of the members in them
    member_steps: int = 0  # (steps: optimiser steps)

    @property
    def model_epochs_per_second(self) -> float:
        return self.model_epochs / self.seconds if self.seconds > 0 else 0.0

    def reject(self, max_params: int) -> None:
        """Count an over-budget draw; a long streak means the space and the budget barely overlap."""
        self.rejected += 1
        self.rejected_in_a_row += 1
        if self.rejected_in_a_row >= MAX_CONSECUTIVE_REJECTS:
            raise UsageError(
                f"{MAX_CONSECUTIVE_REJECTS} draws in a row were over --max-params "
                f"{max_params:,}; raise the budget or narrow the space"
            )

    def count(
        self,
        outcome: Outcome,
        on_trial_done: Callable[[FrozenTrial], None] | None = None,
        on_trial_failed: Callable[[FrozenTrial], None] | None = None,
    ) -> None:
        """Count a told trial that was not rejected, and pass it to the matching callback."""
        self.rejected_in_a_row = 0
        if outcome.trained:
            self.trained += 1
            self.pruned += outcome.kind == "pruned"
            self.diverged += outcome.kind == DIVERGED
            if on_trial_done is not None:
                on_trial_done(outcome.trial)
        elif outcome.trial is not None:
            self.failed += 1
            if on_trial_failed is not None:
                on_trial_failed(outcome.trial)


def throughput_line(stats: SearchStats) -> str:
    """The search's throughput, as it prints it last but one, at every concurrency."""
    memory = (
        f", {stats.bytes_per_trial / 2**20:,.0f} MiB per trial" if stats.bytes_per_trial is not None else ""
    )
    banks = f", {stats.member_steps / stats.bank_steps:.1f} trials per bank" if stats.bank_steps else ""
    return (
        f"{stats.model_epochs} model-epochs in {stats.seconds:.1f} s: "
        f"{stats.model_epochs_per_second:.2f} model-epochs/s, up to {stats.max_in_flight} trials in flight"
        f"{memory}{banks}"
    )
