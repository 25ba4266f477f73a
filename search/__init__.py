"""The study: objective, search loop, storage, result table and the `mnist-arch` CLI."""

from search.artifacts import artifact_dir_for, open_artifact_store, publish_trial
from search.concurrent import ConcurrentStats, run_concurrent
from search.config_file import ExportedConfig, load_config_file
from search.engines import ENGINES, run_trials
from search.export import load_export, write_export
from search.fused_search import run_fused
from search.heartbeat import beating, fail_stale
from search.interrupts import Interrupted, interrupts_as_exceptions
from search.loop import Outcome, is_trained, run_search, run_trial, tell_outcome, trained_count
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
from search.storage import DEFAULT_STORAGE, Heartbeat, mask_url, open_storage
from search.study import enqueue_baselines, make_pruner, open_study

__all__ = [
    "ConcurrentStats",
    "DEFAULT_STORAGE",
    "ENGINES",
    "ExportedConfig",
    "Heartbeat",
    "Interrupted",
    "Outcome",
    "OverBudget",
    "PreparedTrial",
    "TrialContext",
    "artifact_dir_for",
    "beating",
    "enqueue_baselines",
    "fail_stale",
    "interrupts_as_exceptions",
    "epoch_reporter",
    "finish_trial",
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
    "prepare_trial",
    "result_rows",
    "result_table",
    "run_concurrent",
    "run_fused",
    "run_search",
    "run_trial",
    "run_trials",
    "tell_outcome",
    "trained_count",
    "write_export",
]
