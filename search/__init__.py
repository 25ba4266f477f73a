"""The study: objective, search loop, storage, result table and the `mnist-arch` CLI."""

from search.concurrent import ConcurrentStats, run_concurrent
from search.loop import is_trained, run_search, trained_count
from search.objective import (
    OverBudget,
    PreparedTrial,
    TrialContext,
    epoch_reporter,
    finish_trial,
    objective,
    prepare_trial,
)
from search.results import result_rows, result_table
from search.storage import DEFAULT_STORAGE, mask_url, open_storage
from search.study import enqueue_baselines, make_pruner, open_study

__all__ = [
    "ConcurrentStats",
    "DEFAULT_STORAGE",
    "OverBudget",
    "PreparedTrial",
    "TrialContext",
    "enqueue_baselines",
    "epoch_reporter",
    "finish_trial",
    "is_trained",
    "make_pruner",
    "mask_url",
    "objective",
    "open_storage",
    "open_study",
    "prepare_trial",
    "result_rows",
    "result_table",
    "run_concurrent",
    "run_search",
    "trained_count",
]
