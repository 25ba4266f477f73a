"""The settings of one `mnist-arch search`, built once from its command line and handed to the scheduler
and to every worker process (a frozen dataclass pickles; an argparse.Namespace carries everything)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from search.study.storage import DEFAULT_STORAGE


@dataclass(frozen=True)
class SearchSettings:
    """The search's options, with the command line's defaults (`mnist-arch search --help` says more).

    Every field is the option of the same name (`no_baselines` is --no-baselines); `search.search` takes
    one, and it is pickled as is into every worker process."""

    study: str = "mnist-arch"  # the study's name in the storage
    storage: str = DEFAULT_STORAGE  # Optuna storage URL: sqlite:///FILE or postgresql://...
    trials: int = 50  # trained trials the study should hold
    timeout: float | None = None  # seconds after which no new trial starts
    pruner: str = "rungs"  # "rungs" | "median" | "hyperband" | "none"
    objective: str = "val"  # "val" | "test": the accuracy maximised
    baselines: str = "iterations"  # references queued in a new study: "iterations" | "all" | "none"
    no_baselines: bool = False  # True: none queued (the same as baselines "none")
    seed: int = 0  # the sampler's; trial N trains with seed + N
    workers: int | None = None  # worker processes on this machine; None: automatic (auto_workers)
    artifacts: str | None = None  # folder of complete trials' files; None: beside a SQLite file
    space: str | None = None  # TOML file overriding the default space
    max_params: int | None = None  # None: the space's
    epochs: int = 15  # per trial
    concurrency: int | None = None  # trials trained at once per process; None: automatic
    engine: str = "auto"  # "auto" | "separate" | "fused"
    data: str | None = None  # MNIST folder; None: $MNIST_ARCH_DATA
    subset: int | None = None  # training images; None: the whole training pool
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:0,cuda:1" (one per worker)
    # The confirmation: searched trials confirmed at the end (0: none), seeds per model in the first round,
    # rounds of successive halving over seeds. All three None: sized to the search (search.run.sizing);
    # any given: the others default to 5, 2, 2.
    confirm_top: int | None = None
    confirm_seeds: int | None = None
    confirm_rounds: int | None = None
    wide: bool = False  # every column in the result table
    curves: bool = False  # validation and test accuracy after every epoch (else where they are read)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SearchSettings:
        return cls(**{field.name: getattr(args, field.name) for field in fields(cls)})
