"""Creating or resuming a study: checks that it matches the command, and the baselines queue."""

from __future__ import annotations

import json
import warnings
import zlib
from typing import TYPE_CHECKING, Any

import optuna

from mnist_arch.errors import UsageError
from mnist_arch.references import REFERENCES
from search.study.pruners import RUNG_KEEP, RUNG_Z, ReportedMedianPruner, RungPruner, default_rungs
from space.space import SearchSpace

if TYPE_CHECKING:
    from mnist_arch.data import Mnist

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


def decision_epochs(name: str, epochs: int) -> frozenset[int] | None:
    """The epochs at which pruner `name` reads a trial's value; None: any epoch (median, Hyperband)."""
    if name == "rungs":
        return frozenset(default_rungs(epochs))
    if name == "none":
        return frozenset()
    return None


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
    sampler_seed = (seed + n_existing) % 2**32  # numpy's seed range; --seed alone is bounded to it
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


# Settings a study is created with and every resume must repeat: the flag that sets each one, where there is
# one. A key without a flag (added later) is still compared, and named as a setting.
SETTING_FLAGS = {
    "objective": "--objective",
    "max_params": "--max-params",
    "epochs": "--epochs",
    "subset": "--subset",
    "space": "--space",
}
_NEW_STUDY = "choose another --study name to start a new study"


def study_settings(settings: Any, space: SearchSpace, mnist: Mnist) -> dict[str, Any]:
    """What a study is created with and every resume, and every worker, must repeat: stored on a new
    study, compared key by key on an existing one (`check_compatible`), with the objective. `settings`
    is the search's settings (epochs, subset)."""
    return {
        "max_params": space.max_params,
        "epochs": settings.epochs,
        "subset": settings.subset,
        "space": space.spec.source,
        "space_digest": space.spec.digest(),
        "dataset": mnist.identity.to_dict(),  # compared by its fingerprint (`comparable`)
    }


def open_search_study(
    settings: Any,
    storage: optuna.storages.BaseStorage,
    space: SearchSpace,
    mnist: Mnist,
    *,
    in_flight: int,
    worker: str | None = None,
) -> tuple[optuna.Study, bool]:
    """`open_study` for a search (its command or one of its workers) with `settings`, the search's
    settings: the same study, pruner and settings check in every process."""
    study, new = open_study(
        storage,
        settings.study,
        objective=settings.objective,
        seed=settings.seed,
        pruner=make_pruner(settings.pruner, settings.epochs),
        settings=study_settings(settings, space, mnist),
        worker=worker,
        in_flight=in_flight,
    )
    note_resume_changes(
        study, new, {"pruner": settings.pruner, "seed": settings.seed}, quiet=worker is not None
    )
    return study, new


# Settings a resume may change, with a warning: another pruner stops the trials from here on by another
# rule (those already run keep theirs), another seed draws other points from here on. Neither makes the
# stored trials wrong, so refusing would only force a new study; the warning says the study now mixes them.
WARNED_SETTINGS = {"pruner": "--pruner", "seed": "--seed"}


def note_resume_changes(
    study: optuna.Study, new: bool, given: dict[str, Any], *, quiet: bool = False
) -> list[str]:
    """Store `given` (the latest run's pruner and seed) on the study; on a resumed one, print one warning
    line per setting that differs from the stored one. Returns the warnings."""
    import sys

    notes = []
    for key, value in given.items():
        stored = study.user_attrs.get(key)
        if not new and stored is not None and stored != value:
            flag = WARNED_SETTINGS[key]
            notes.append(
                f"warning: study '{study.study_name}' last ran with {flag} {stored}, this command runs with "
                f"{flag} {value}: the trials from here on use {flag} {value}, the stored ones keep theirs"
            )
        if stored != value:
            study.set_user_attr(key, value)
    if not quiet:
        for note in notes:
            print(note, file=sys.stderr)
    return notes


def check_compatible(study: optuna.Study, settings: dict[str, Any]) -> None:
    """Resuming must run under the settings the study was created with: the direction, and every setting
    it stored (`settings` holds this command's). Settings an older study did not store are accepted."""
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UsageError(
            f"study '{study.study_name}' minimises; mnist-arch maximises accuracy: "
            "choose another --study name"
        )
    stored = study.user_attrs
    by_content = "space_digest" in stored and "space_digest" in settings
    for key, value in settings.items():
        if key == "space" and by_content:
            continue  # the same space by another path (or a copy of the default) is the same space
        if key in stored and comparable(stored[key]) != comparable(value):
            raise UsageError(setting_mismatch(study.study_name, key, stored[key], value))


def comparable(value: Any) -> Any:
    """A setting as the storage keeps it (JSON: tuples become lists); an identity object (a dict with a
    `fingerprint`, such as the dataset's) by its fingerprint."""
    if isinstance(value, dict) and "fingerprint" in value:
        value = value["fingerprint"]
    return json.loads(json.dumps(value))


def setting_mismatch(study: str, key: str, stored: Any, current: Any) -> str:
    """One line: which setting differs, the stored and the given value, and the two ways out."""
    if key == "dataset":
        return (
            f"study '{study}' was created on other data: {_describe(stored)}, this command's data: "
            f"{_describe(current)}; rerun with --data pointing at the study's data, or {_NEW_STUDY}"
        )
    if key == "space_digest":
        return (
            f"study '{study}' was created with other search-space dimensions than --space gives now "
            f"(compared by content, not by path); restore the space it was created with, or {_NEW_STUDY}"
        )
    flag = SETTING_FLAGS.get(key)
    if flag is None:
        return (
            f"study '{study}' was created with {key} = {_describe(stored)}, this command runs with "
            f"{_describe(current)}; rerun with the study's {key}, or {_NEW_STUDY}"
        )
    return (
        f"study '{study}' was created {_as_flag(flag, stored)}, this command runs {_as_flag(flag, current)}; "
        f"rerun {_as_flag(flag, stored)}, or {_NEW_STUDY}"
    )


def _as_flag(flag: str, value: Any) -> str:
    """'with --max-params 8000'; 'without --subset' for a setting left at its default."""
    if value is None or (flag == "--space" and value == "default"):
        return f"without {flag}"
    return f"with {flag} {value}"


def _describe(value: Any) -> str:
    if isinstance(value, dict) and "fingerprint" in value:
        name = value.get("name")
        return f"{name} ({value['fingerprint']})" if name else str(value["fingerprint"])
    return str(value)


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

    `settings` (see `check_compatible`) are stored on a new study and compared on an existing one before
    anything is written to it. Creation is atomic in the storage (a unique name), so when two machines
    start at once exactly one of them creates the study (and queues the baselines). `worker` names a
    parallel worker; `in_flight` is how many trials it trains at once (the sampler's startup depends
    on it)."""
    settings = {"objective": objective, **settings}
    found = existing_study(storage, name)
    new = False
    if found is None:
        try:
            storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
            new = True
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another process created it a moment ago
        found = optuna.load_study(study_name=name, storage=storage)
    if not new:
        check_compatible(found, settings)
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
        for key, value in settings.items():
            study.set_user_attr(key, value)
    return study, new


BASELINE_CHOICES = ("iterations", "all", "none")


def enqueue_baselines(study: optuna.Study, space: SearchSpace, which: str = "iterations") -> None:
    """Queue the references first (the three iterations, all, or none); a reference outside the space
    (a narrowed one, or a budget it does not fit) is trained as it is, marked as a baseline."""
    if which not in BASELINE_CHOICES:
        raise ValueError(f"unknown baselines {which!r}")
    chosen = [r for r in REFERENCES if which == "all" or (which == "iterations" and r.is_iteration)]
    for reference in chosen:
        params = space.params_for(reference.config) if not space.outside(reference.config) else {}
        study.enqueue_trial(params, user_attrs={"baseline": reference.name})
