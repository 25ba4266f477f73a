"""The study: search, storage, result table, export and the `mnist-arch` CLI.

The public surface is re-exported here lazily (on first use), so that importing any module of the
package, such as the result table, loads neither the run side (search.run) nor the others.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "run_search": "search.run.scheduler",
    "SearchSettings": "search.run.settings",
    "SearchStats": "search.run.settle",
    "Engine": "search.run.engine",
    "ENGINES": "search.run.engines",
    "make_engine": "search.run.engines",
    "TrialContext": "search.objective",
    "DEFAULT_STORAGE": "search.storage",
    "Heartbeat": "search.storage",
    "mask_url": "search.storage",
    "open_storage": "search.storage",
    "enqueue_baselines": "search.study",
    "make_pruner": "search.study",
    "open_study": "search.study",
    "is_trained": "search.trials",
    "trained_count": "search.trials",
    "result_rows": "search.results",
    "result_table": "search.results",
    "ExportedConfig": "search.config_file",
    "load_config_file": "search.config_file",
    "load_export": "search.export",
    "write_export": "search.export",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
