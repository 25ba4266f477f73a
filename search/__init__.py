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
    "TrialContext": "search.run.trial",
    "DEFAULT_STORAGE": "search.study.storage",
    "Heartbeat": "search.study.storage",
    "mask_url": "search.study.storage",
    "open_storage": "search.study.storage",
    "enqueue_baselines": "search.study.study",
    "make_pruner": "search.study.study",
    "open_study": "search.study.study",
    "is_trained": "search.study.trials",
    "trained_count": "search.study.trials",
    "result_rows": "search.results.table",
    "result_table": "search.results.table",
    "ExportedConfig": "search.export.config_file",
    "load_config_file": "search.export.config_file",
    "load_export": "search.export.export",
    "write_export": "search.export.export",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
