"""Creating or resuming a study: checks that it matches the command, and the baselines queue."""

from __future__ import annotations

import warnings

import optuna

from mnist_arch.errors import UsageError
from mnist_arch.iterations import ITERATIONS
from space.space import SearchSpace

OBJECTIVES = {"val": "val_acc", "test": "test_acc"}


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """MedianPruner after the three baselines and a few warm-up epochs; Hyperband over epochs."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=epochs // 5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def make_sampler(seed: int, n_existing: int) -> optuna.samplers.BaseSampler:
    # Offsetting the seed by the trials already stored keeps a resumed study from redrawing the
    # same startup points. group=True lets multivariate TPE handle the per-layer (conditional) widths.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed + n_existing, multivariate=True, group=True, constant_liar=True
        )


def existing_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study | None:
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    return optuna.load_study(study_name=name, storage=storage) if name in names else None


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
) -> tuple[optuna.Study, bool]:
    """Load `name` if it exists (after the compatibility check), else create it. Returns (study, new)."""
    found = existing_study(storage, name)
    if found is not None:
        check_compatible(found, objective)
    n_existing = len(found.get_trials(deepcopy=False)) if found is not None else 0
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=make_sampler(seed, n_existing),
        pruner=pruner,
        load_if_exists=True,
    )
    if found is None:
        study.set_metric_names([OBJECTIVES[objective]])
        study.set_user_attr("objective", objective)
        for key, value in settings.items():
            study.set_user_attr(key, value)
    return study, found is None


def enqueue_baselines(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the three iterations first; a baseline outside a narrowed space is trained as is."""
    for iteration in ITERATIONS:
        params = space.params_for(iteration.config) if not space.outside(iteration.config) else {}
        study.enqueue_trial(params, user_attrs={"baseline": iteration.name})
