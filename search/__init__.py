"""Search small MNIST CNNs and their training recipes under a parameter budget, with Optuna.

From Python, `search(settings)` is what `mnist-arch search` runs (it adds the printing)::

    from search import SearchSettings, search

    result = search(SearchSettings(storage="sqlite:///mnist_arch.db", trials=20, epochs=5, subset=5000))
    print(result.stats.trained, "trials trained")
    if result.winner is not None:
        print(result.winner.line())

`SearchCallbacks` (subclass it) hears the progress; `result.study` is the Optuna study, which the
`mnist-arch report`, `export` and `dashboard` commands read. The names are loaded on first use, so
importing a module of the package (the result table, say) loads neither torch nor the run side.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "search": "search.run.pipeline",  # settings -> SearchResult: the whole search
    "SearchSettings": "search.run.settings",  # the options, with the command line's defaults
    "SearchResult": "search.run.pipeline",  # the study, the counts, the confirmed winner
    "SearchCallbacks": "search.run.callbacks",  # progress hooks
    "SearchStats": "search.run.settle",  # the counts of one process's search loop
    "Winner": "search.results.winner",  # the confirmed winner as stored in the study
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
