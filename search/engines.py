"""Which loop trains the search's trials: one at a time, several as separate models, or fused banks."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import optuna
import torch
from optuna.trial import FrozenTrial

from search.concurrent import AUTO_CONCURRENCY, run_concurrent
from search.fused_search import run_fused
from search.loop import LoopStats, run_search
from search.objective import TrialContext
from space.space import SearchSpace

# separate: every trial its own model (on CUDA its own graph and stream); fused: trials of one batch
# size and depth after the pool train as one network with grouped convolutions.
ENGINES = ("separate", "fused")
ENGINE_CHOICES = ("auto", *ENGINES)


def resolve_engine(engine: str, space: SearchSpace, device: torch.device) -> str:
    """`auto`: fused on CUDA when the space fixes the architecture, else separate.

    Fused banks pay off when their members share a shape: on an H200, 32 copies of one model train
    at 9.4 model-epochs/s fused against 5.4 as separate graphs, but 64 random draws of the default
    space fuse into small or padded banks and train at 3.1 against 5.4 (BENCHMARKS.md). On the CPU
    fusing gains nothing.
    """
    if engine != "auto":
        return engine
    return "fused" if device.type == "cuda" and space.fixed_architecture else "separate"


def expected_in_flight(concurrency: int | None, device: torch.device) -> int:
    """Trials a process will keep in flight: the number asked for, else the automatic cap (1 on CPU)."""
    if concurrency is not None:
        return concurrency
    return AUTO_CONCURRENCY if device.type == "cuda" else 1


def run_trials(
    study: optuna.Study,
    ctx: TrialContext,
    *,
    n_trials: int,
    concurrency: int | None,
    engine: str = "auto",
    timeout: float | None = None,
    on_trial_done: Callable[[FrozenTrial], None] | None = None,
    on_trial_failed: Callable[[FrozenTrial], None] | None = None,
) -> LoopStats:
    """Trials until the study holds `n_trials`; concurrency None is automatic (1 on CPU)."""
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"unknown engine {engine!r}")
    engine = resolve_engine(engine, ctx.space, ctx.data.train_x.device)
    if concurrency is None and ctx.data.train_x.device.type != "cuda":
        concurrency = 1
    callbacks = dict(on_trial_done=on_trial_done, on_trial_failed=on_trial_failed)
    if engine == "fused":
        return run_fused(study, ctx, n_trials=n_trials, concurrency=concurrency, timeout=timeout, **callbacks)
    if concurrency == 1:
        return run_search(study, ctx, n_trials=n_trials, timeout=timeout, **callbacks)
    return run_concurrent(
        study, ctx, n_trials=n_trials, concurrency=concurrency, timeout=timeout, **callbacks
    )


def run_search_trials(
    args: argparse.Namespace,
    study: optuna.Study,
    ctx: TrialContext,
    *,
    on_trial_done: Callable[[FrozenTrial], None],
    on_trial_failed: Callable[[FrozenTrial], None],
) -> LoopStats:
    """The trials of `mnist-arch search ARGS`, in this process or in a worker."""
    return run_trials(
        study,
        ctx,
        n_trials=args.trials,
        concurrency=args.concurrency,
        engine=args.engine,
        timeout=args.timeout,
        on_trial_done=on_trial_done,
        on_trial_failed=on_trial_failed,
    )
