"""The study: objective, search loop, storage, result table and the `mnist-arch` CLI."""

from search.heartbeat import beating, fail_stale
from search.interrupts import Interrupted, interrupts_as_exceptions
from search.loop import Outcome, is_trained, run_search, run_trial, tell_outcome, trained_count
from search.objective import OverBudget, TrialContext, objective
from search.results import result_rows, result_table
from search.storage import DEFAULT_STORAGE, Heartbeat, mask_url, open_storage
from search.study import enqueue_baselines, make_pruner, open_study

__all__ = [
    "DEFAULT_STORAGE",
    "Heartbeat",
    "Interrupted",
    "Outcome",
    "OverBudget",
    "TrialContext",
    "beating",
    "enqueue_baselines",
    "fail_stale",
    "interrupts_as_exceptions",
    "is_trained",
    "make_pruner",
    "mask_url",
    "objective",
    "open_storage",
    "open_study",
    "result_rows",
    "result_table",
    "run_search",
    "run_trial",
    "tell_outcome",
    "trained_count",
]
