"""The study: objective, search loop, storage, result table and the `mnist-arch` CLI."""

from search.artifacts import artifact_dir_for, open_artifact_store, publish_trial
from search.config_file import ExportedConfig, load_config_file
from search.export import load_export, write_export
from search.loop import is_trained, run_search, trained_count
from search.objective import OverBudget, TrialContext, objective
from search.results import result_rows, result_table
from search.storage import DEFAULT_STORAGE, mask_url, open_storage
from search.study import enqueue_baselines, make_pruner, open_study

__all__ = [
    "DEFAULT_STORAGE",
    "ExportedConfig",
    "OverBudget",
    "TrialContext",
    "artifact_dir_for",
    "enqueue_baselines",
    "is_trained",
    "load_config_file",
    "load_export",
    "make_pruner",
    "mask_url",
    "objective",
    "open_storage",
    "open_artifact_store",
    "open_study",
    "publish_trial",
    "result_rows",
    "result_table",
    "run_search",
    "trained_count",
    "write_export",
]
