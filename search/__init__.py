"""The study: objective, search loop, storage, result table and the `mnist-arch` CLI."""

from search.loop import is_trained, run_search, trained_count
from search.objective import OverBudget, TrialContext, objective
from search.results import result_rows, result_table
from search.storage import DEFAULT_STORAGE, mask_url, open_storage
from search.study import enqueue_baselines, make_pruner, open_study

__all__ = [
    "DEFAULT_STORAGE",
    "OverBudget",
    "TrialContext",
    "enqueue_baselines",
    "is_trained",
    "make_pruner",
    "mask_url",
    "objective",
    "open_storage",
    "open_study",
    "result_rows",
    "result_table",
    "run_search",
    "trained_count",
]
