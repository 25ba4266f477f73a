"""Creating or resuming a study: checks that it matches the command, and the baselines queue."""

from __future__ import annotations

import warnings
import zlib

import optuna

from mnist_arch.errors import UsageError
from mnist_arch.iterations import ITERATIONS
from search.pruners import RUNG_KEEP, RUNG_Z, ReportedMedianPruner, RungPruner, default_rungs
from space.space import SearchSpace

OBJECTIVES = {"val": "val_acc", "test": "test_acc"}


PRUNERS = ("rungs", "median", "hyperband", "none")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """`rungs` (the default, chosen by replaying recorded curves: BENCHMARKS.md), the running median
    once three other trials reached an epoch after `epochs // 5` warm-up epochs, Hyperband over epochs."""
    if name == "rungs":
        return RungPruner(default_rungs(epochs), keep=RUNG_KEEP, z=RUNG_Z, min_peers=4)
    if name == "median":
        return ReportedMedianPruner(n_min_trials=3, n_warmup_steps=epochs // 5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def make_sampler(
    seed: int, n_existing: int, worker: str | None = None, in_flight: int = 1
) -> optuna.samplers.BaseSampler:
    # Offsetting the seed by the trials already stored keeps a resumed study from redrawing the
    # same startup points; each parallel worker (host:pid) gets its own seed, or all of them would
    # draw the same points. group=True lets multivariate TPE handle the per-layer (conditional) widths;
    # constant_liar keeps parallel workers away from each other's running points.
    # Startup: with K > 1 trials in flight the first K proposals are random whatever n_startup_trials
    # says (nothing is told yet), so a short startup lets TPE take over once 5 results are in; tying it
    # to K only delays that (proxy runs in scripts/measure_sampling.py, 32 in flight: startup 5 and 10
    # both end at 99.42, startup 32 at 99.37). Sequentially Optuna's 10 stays. consider_endpoints
    # (no change beyond noise) and n_ei_candidates (64 ended lower) keep Optuna's defaults.
    sampler_seed = seed + n_existing
    if worker is not None:
        sampler_seed = zlib.crc32(f"{sampler_seed}:{worker}".encode()) & 0x7FFFFFFF
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=sampler_seed,
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=10 if in_flight <= 1 else 5,
        )


def existing_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def check_compatible(study: optuna.Study, objective: str) -> None:
    """Resuming must not mix objectives or directions in one study."""
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UsageError(
            f"study '{study.study_name}' minimises; mnist-arch maximises accuracy: "
            "choose another --study name"
        )
    stored = study.user_attrs.get("objective")
    if stored is not None and stored != objective:
        raise UsageError(
            f"study '{study.study_name}' was created with --objective {stored}; "
            f"rerun with --objective {stored} or choose another --study name"
        )


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    objective: str,
    seed: int,
    pruner: optuna.pruners.BasePruner,
    settings: dict,
    worker: str | None = None,
    in_flight: int = 1,
) -> tuple[optuna.Study, bool]:
    """Load `name` if it exists (after the compatibility check), else create it. Returns (study, new).

    Creation is atomic in the storage (a unique name), so when two machines start at once exactly
    one of them creates the study (and queues the baselines). `worker` names a parallel worker;
    `in_flight` is how many trials it trains at once (the sampler's startup depends on it)."""
    new = False
    try:
        storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
        new = True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    found = optuna.load_study(study_name=name, storage=storage)
    if not new:
        check_compatible(found, objective)
    n_existing = len(found.get_trials(deepcopy=False))
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(seed, n_existing, worker, in_flight=in_flight),
        pruner=pruner,
    )
    if new:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVES[objective]])
        study.set_user_attr("objective", objective)
        for key, value in settings.items():
            study.set_user_attr(key, value)
    return study, new


def enqueue_baselines(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the three iterations first; a baseline outside a narrowed space is trained as is."""
    for iteration in ITERATIONS:
        params = space.params_for(iteration.config) if not space.outside(iteration.config) else {}
        study.enqueue_trial(params, user_attrs={"baseline": iteration.name})
