"""The settings of one `mnist-arch search`, built once from its command line and handed to the scheduler
and to every worker process (a frozen dataclass pickles; an argparse.Namespace carries everything)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from search.study.storage import DEFAULT_STORAGE


@dataclass(frozen=True)
class SearchSettings:
    """The search's options, with the command line's defaults."""

    study: str = "mnist-arch"
    storage: str = DEFAULT_STORAGE
    trials: int = 50  # trained trials the study should hold
    timeout: float | None = None  # seconds after which no new trial starts
    pruner: str = "rungs"
    objective: str = "val"
    no_baselines: bool = False
    seed: int = 0
    workers: int = 1
    artifacts: str | None = None
    space: str | None = None  # TOML file overriding the default space
    max_params: int | None = None  # None: the space's
    epochs: int = 15
    concurrency: int | None = None  # None: automatic
    engine: str = "auto"
    data: str | None = None
    subset: int | None = None
    device: str = "auto"
    confirm_top: int = 5
    confirm_seeds: int = 3
    wide: bool = False  # every column in the result table

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SearchSettings:
        return cls(**{field.name: getattr(args, field.name) for field in fields(cls)})
