"""The confirmation stage: retrain configs from scratch with several seeds, store the runs, choose the winner.

The runs and the winner as stored (and read back) are the results side's (search.results.confirmations,
search.results.winner); this module trains. One step, `confirm_runs`, serves the search's confirmation of its
top trials and `report --confirm-seeds`: the runs still missing are counted, the data is loaded only when
some are, the plan is told (search.run.callbacks) and the missing runs train; stored runs are
reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial

from mnist_arch.config import CandidateConfig
from mnist_arch.iterations import get_iteration
from mnist_arch.trainer import DeviceData, DivergedError, EpochStats, Evaluation, compile_pays
from search.results.confirmations import (
    Confirmation,
    ConfirmJob,
    attr_key,
    load,
    missing_seeds,
    rank_by_confirmation,
    stored_runs,
)
from search.results.winner import (
    OPTUNA_BEST_ATTR,
    REFERENCE,
    Winner,
    choose_winner,
    store_winner,
    trial_label,
)
from search.run.callbacks import ConfirmPlan, ConfirmProgress
from search.run.engine import EpochEnd
from search.run.interrupts import interruptible
from search.run.separate import SeparateEngine
from search.run.sizing import race_plan

IN_FLIGHT = 32  # runs trained interleaved at once on CUDA; on the CPU one at a time is faster
# (interleaving 4 gave 0.89x the model-epochs/s: BENCHMARKS.md, "CPU layouts")


def confirm(
    study: optuna.Study,
    jobs: Sequence[ConfirmJob],
    data: DeviceData | None,
    *,
    seeds: int,
    epochs: int,
    subset: int | None,
    on_epoch: Callable[[ConfirmJob, int, EpochStats], None] | None = None,
) -> dict[str, Confirmation]:
    """Train every missing (job, seed) run, store them chunk by chunk; label -> seeds 0..seeds-1.

    The runs of a chunk train interleaved (on CUDA their graphs overlap), each exactly as alone.
    `data` may be None only when nothing is missing."""
    missing = missing_seeds(study, jobs, seeds, epochs, subset)
    if missing and data is None:
        raise ValueError("confirmation runs are missing but no training data was given")
    in_flight = IN_FLIGHT if data is not None and data.train_x.device.type == "cuda" else 1
    for first in range(0, len(missing), in_flight):
        chunk = missing[first : first + in_flight]
        finals = _train_chunk(chunk, data, epochs, on_epoch)
        finished: dict[str, dict[str, dict]] = {}  # attribute key -> seed -> run, one write per key
        for (job, seed), last in zip(chunk, finals, strict=True):
            run = {"test_acc": 0.0, "val_acc": 0.0, "diverged": True}
            if last is not None:
                run = {"test_acc": last.test_acc, "val_acc": last.val_acc}
            key = attr_key(job.label, epochs, subset)
            finished.setdefault(key, {})[str(seed)] = {**run, "device": data.train_x.device.type}
        for key, runs in finished.items():
            runs = {**stored_runs(study, key), **runs}
            study.set_user_attr(key, {"epochs": epochs, "subset": subset, "runs": runs})
    return {job.label: load(study, job.label, seeds, epochs, subset) for job in jobs}


def _train_chunk(
    chunk: list[tuple[ConfirmJob, int]],
    data: DeviceData,
    epochs: int,
    on_epoch: Callable[[ConfirmJob, int, EpochStats], None] | None,
) -> list[EpochStats | None]:
    """Final-epoch stats of each run; None for a run that diverged (it counts as 0% accuracy).

    The runs train together on the search's separate engine; a run that diverges stops alone."""
    finals: list[EpochStats | None] = [None] * len(chunk)
    compiled = compile_pays(data.train_x.device, len(data.train_y), epochs)
    engine = SeparateEngine(data, Evaluation.final_only(epochs), compiled=compiled)
    with interruptible():
        for index, (job, seed) in enumerate(chunk):
            engine.admit(index, job.config, seed)
        while events := engine.advance():
            for event in events:
                if not isinstance(event, EpochEnd):
                    if isinstance(event.error, DivergedError):
                        continue
                    raise event.error
                job, seed = chunk[event.key]
                if on_epoch is not None:
                    on_epoch(job, seed, event.stats)
                if event.stats.epoch == epochs:
                    finals[event.key] = event.stats
                    engine.release(event.key)
    return finals


def confirm_runs(
    study: optuna.Study,
    jobs: Sequence[ConfirmJob],
    load_data: Callable[[], DeviceData],
    *,
    what: str,
    seeds: int,
    epochs: int,
    subset: int | None,
    progress: ConfirmProgress | None = None,
) -> dict[str, Confirmation]:
    """Confirm `jobs` with seeds 0..seeds-1: stored runs are reused, the missing ones train.

    `load_data` is called only when some run is not stored yet; label -> its confirmation."""
    progress = progress or ConfirmProgress()
    todo = len(missing_seeds(study, jobs, seeds, epochs, subset))
    data = load_data() if todo else None
    if data is None:
        progress.confirming(ConfirmPlan(what, seeds, epochs, 0))
    else:
        progress.confirming(
            ConfirmPlan(what, seeds, epochs, todo, len(data.train_y), str(data.train_x.device))
        )
    try:
        return confirm(
            study, jobs, data, seeds=seeds, epochs=epochs, subset=subset, on_epoch=progress.confirm_epoch
        )
    finally:
        progress.confirm_end()


def has_baselines(study: optuna.Study) -> bool:
    return any("baseline" in t.user_attrs for t in study.get_trials(deepcopy=False))


def confirm_winner(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    load_data: Callable[[], DeviceData],
    *,
    seeds: int,
    epochs: int,
    subset: int | None,
    rounds: int = 1,
    progress: ConfirmProgress | None = None,
) -> Winner | None:
    """Confirm `trials` (and iteration-3 when the study has baselines), store and return the winner.

    With `rounds` > 1 the confirmation races (race_plan): each round ranks by mean validation accuracy and
    the better half goes on with twice the seeds; the winner is the best of the last round, and
    iteration-3 is confirmed with the last round's seeds. `load_data` is called only when some run is not
    stored yet."""
    progress = progress or ConfirmProgress()
    if not trials:
        progress.note("confirmation skipped: the study has no complete searched trial within its budget")
        return None
    remaining = list(trials)
    plan = race_plan(len(trials), seeds, rounds)
    for number, (models, round_seeds) in enumerate(plan, start=1):
        remaining = remaining[:models]
        jobs = [
            ConfirmJob(trial_label(t.number), CandidateConfig.from_dict(t.user_attrs["config"]))
            for t in remaining
        ]
        last = number == len(plan)
        if last and has_baselines(study):
            jobs.append(ConfirmJob(REFERENCE, get_iteration(REFERENCE).config))
        what = f"{len(remaining)} searched model(s)" + (
            f" and {REFERENCE}" if len(jobs) > len(remaining) else ""
        )
        if len(plan) > 1:
            what = f"round {number} of {len(plan)}: {what}"
        results = confirm_runs(
            study,
            jobs,
            load_data,
            what=what,
            seeds=round_seeds,
            epochs=epochs,
            subset=subset,
            progress=progress,
        )
        remaining = rank_by_confirmation(remaining, lambda t: results[trial_label(t.number)])  # noqa: B023
    winner = choose_winner(
        [(t, results[trial_label(t.number)]) for t in remaining],
        results.get(REFERENCE),
        epochs=epochs,
        subset=subset,
    )
    store_winner(study, winner)
    entry = study.user_attrs.get(OPTUNA_BEST_ATTR)
    if isinstance(entry, dict) and entry.get("why"):
        progress.note(entry["why"])
    return winner
