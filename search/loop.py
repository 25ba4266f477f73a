"""The search loop: ask a trial, run the objective, tell the result, until enough trials trained.

Several workers (processes, machines) may run this loop on one study. `--trials N` stays exact: a
worker asks only while trained + running < N, and checks again right after its ask (a racing worker
may have asked too); if the study is then over N it gives the trial back to the queue (WAITING)
before training. Of two racing workers at least one sees the other's running trial, so the study
never trains more than N. (Optuna's MaxTrialsCallback counts only finished trials and stops only
the worker whose trial just finished, so the others' running trials overshoot N.)
"""

from __future__ import annotations

import os
import random
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from mnist_arch.errors import UsageError
from mnist_arch.trainer import DivergedError
from search.heartbeat import beating, fail_stale
from search.interrupts import check_interrupt, interruptible
from search.objective import OverBudget, TrialContext, objective

MAX_CONSECUTIVE_REJECTS = 1000
INJECT_OOM_ENV = "MNIST_ARCH_INJECT_OOM"  # test hook: trial numbers that raise CUDA out-of-memory

# fail_reason values (user attribute; the result table and the dashboard show it)
DIVERGED = "diverged"
OUT_OF_MEMORY = "out of memory"
INTERRUPTED = "interrupted"


def is_trained(trial: FrozenTrial) -> bool:
    """Complete or pruned after training: what --trials counts (over-budget draws are not)."""
    trained_states = (TrialState.COMPLETE, TrialState.PRUNED)
    return trial.state in trained_states and "rejected" not in trial.user_attrs


def trained_count(study: optuna.Study) -> int:
    return sum(is_trained(t) for t in study.get_trials(deepcopy=False))


def trained_and_running(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False)
    return sum(is_trained(t) for t in trials), sum(t.state == TrialState.RUNNING for t in trials)


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
    """Tell the storage how `trial` ended: with `value` (complete) or the `error` its objective raised.

    OverBudget -> PRUNED, not counted ('rejected' attr set by the objective); TrialPruned -> PRUNED;
    DivergedError -> PRUNED, fail_reason 'diverged' (it trained, and the sampler should learn that
    this region is bad: TPE ignores FAILED trials but ranks PRUNED ones last); torch.OutOfMemoryError
    -> FAIL 'out of memory' (the search goes on); KeyboardInterrupt (incl. SIGTERM, see
    search.interrupts) -> FAIL 'interrupted', fatal; anything else -> FAIL with its type name, fatal.
    The caller re-raises `error` when the outcome is fatal.
    """
    kind, state, fatal = "complete", TrialState.COMPLETE, False
    if error is None:
        pass
    elif isinstance(error, OverBudget):
        kind, state = "rejected", TrialState.PRUNED
    elif isinstance(error, optuna.TrialPruned):
        kind, state = "pruned", TrialState.PRUNED
    elif isinstance(error, DivergedError):
        kind, state = DIVERGED, TrialState.PRUNED
    elif isinstance(error, torch.OutOfMemoryError):
        kind, state = OUT_OF_MEMORY, TrialState.FAIL
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the failed trial's memory back before the next one
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


def run_trial(study: optuna.Study, trial: optuna.Trial, ctx: TrialContext) -> Outcome:
    """Run the objective for `trial` and tell its outcome; re-raises fatal errors after telling."""
    try:
        with interruptible():
            _inject_oom(trial)
            value = objective(trial, ctx)
    except BaseException as error:
        outcome = tell_outcome(study, trial, error=error)
        if outcome.fatal:
            raise
        return outcome
    return tell_outcome(study, trial, value)


def _inject_oom(trial: optuna.Trial) -> None:
    """Test hook: $MNIST_ARCH_INJECT_OOM lists trial numbers that fail with torch's CUDA OOM error
    as they start (where a real one would come from allocating the model and batches)."""
    numbers = {int(n) for n in os.environ.get(INJECT_OOM_ENV, "").split(",") if n.strip().isdigit()}
    if trial.number in numbers:
        raise torch.OutOfMemoryError(f"CUDA out of memory (injected by {INJECT_OOM_ENV} for this trial)")


@dataclass
class LoopStats:
    trained: int = 0
    rejected: int = 0
    pruned: int = 0
    diverged: int = 0  # pruned as diverged (counted: they trained)
    failed: int = 0  # out of memory (the search went on)
    given_back: int = 0  # asked while the study was already full
    requeued: int = 0  # trials of killed workers this worker failed and queued again
    rejected_in_a_row: int = 0

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


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": we drive it
        warnings.simplefilter("ignore", UserWarning)
        return study.ask()


def _claim(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Keep `trial` if the study, counting it, does not exceed n_trials; else give it back."""
    trained, running = trained_and_running(study)  # running includes this trial
    if trained + running <= n_trials:
        return True
    study._storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
    return False


def run_search(
    study: optuna.Study,
    ctx: TrialContext,
    *,
    n_trials: int,
    timeout: float | None = None,
    on_trial_done: Callable[[FrozenTrial], None] | None = None,
    on_trial_failed: Callable[[FrozenTrial], None] | None = None,
    poll: float = 1.0,
) -> LoopStats:
    """Train trials until the study holds `n_trials` trained ones (or `timeout` seconds pass).

    Safe to run in several processes on one study: see the module docstring."""
    stats = LoopStats()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    start = time.monotonic()
    while True:
        check_interrupt()
        stats.requeued += len(fail_stale(study))
        trained, running = trained_and_running(study)
        if trained >= n_trials:
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        if trained + running >= n_trials:
            time.sleep(poll)  # a running trial may still fail (out of memory, killed) and free a slot
            continue
        trial = _ask(study)
        if not _claim(study, trial, n_trials):
            stats.given_back += 1
            time.sleep(random.uniform(0.1, poll))  # racing workers back off by different amounts
            continue
        with beating(study, trial):
            trial.set_user_attr("worker", worker)  # host:pid, to trace a lost trial to its worker
            outcome = run_trial(study, trial, ctx)
        if outcome.kind == "rejected":
            stats.reject(ctx.max_params)
            continue
        stats.count(outcome, on_trial_done, on_trial_failed)
    return stats
