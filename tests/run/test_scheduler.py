"""The scheduler driven by a fake engine, without data, in milliseconds: it counts exactly at every
concurrency, prunes, fails out-of-memory trials and goes on (and stops when one at a time fails too),
waits while a peer's trial could still free a slot, never lets a signal cut into a storage call, and
marks every trial with its worker."""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
import torch
from optuna.trial import TrialState

from search.run.interrupts import Interrupted, interrupts_as_exceptions
from search.run.scheduler import OOM_ALONE_LIMIT, run_search, worker_name
from search.run.settings import SearchSettings
from search.run.trial import TrialContext
from search.study.optuna_private import trial_id
from search.study.storage import Heartbeat, open_storage
from search.study.trials import trained_count
from space.space import SearchSpace
from tests.fake_engine import FakeEngine, no_data


def new_study(pruner=None, storage=None) -> optuna.Study:  # noqa: ANN001
    sampler = optuna.samplers.TPESampler(seed=0, constant_liar=True)
    return optuna.create_study(
        storage=storage, direction="maximize", sampler=sampler, pruner=pruner or optuna.pruners.NopPruner()
    )


def queue_iteration_3(study: optuna.Study, count: int) -> optuna.Study:
    """Trials numbered 0..count-1 that are never over budget (seed = number)."""
    for _ in range(count):
        study.enqueue_trial({}, user_attrs={"baseline": "iteration-3"})
    return study


def make_ctx(epochs: int, on_epoch=None) -> TrialContext:  # noqa: ANN001
    return TrialContext(SearchSpace.load(None), no_data(), epochs, 8000, "val", seed=0, on_epoch=on_epoch)


def search(study, engine, *, trials: int, concurrency: int, epochs: int = 3, ctx=None, **kwargs):  # noqa: ANN001
    settings = SearchSettings(trials=trials, concurrency=concurrency, epochs=epochs)
    return run_search(study, ctx or make_ctx(epochs), engine, settings, poll=0.05, **kwargs)


def states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.trials if "rejected" not in t.user_attrs]


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_counts_exactly_at_every_concurrency(concurrency) -> None:
    study, engine, done = new_study(), FakeEngine(), []
    stats = search(study, engine, trials=7, concurrency=concurrency, on_trial_done=done.append)
    assert trained_count(study) == 7 and states(study) == [TrialState.COMPLETE] * 7 and len(done) == 7
    assert stats.trained == 7 and stats.model_epochs == 21
    assert stats.max_in_flight == min(concurrency, 7) == max(engine.in_flight_seen)
    assert engine.in_flight == 0  # every trial released
    assert all(t.user_attrs["worker"] == worker_name() for t in study.trials)  # rejected draws too
    rejected = [t for t in study.trials if "rejected" in t.user_attrs]
    assert stats.rejected == len(rejected)


def test_pruned_trials_free_their_slot_at_once() -> None:
    study, engine = new_study(optuna.pruners.ThresholdPruner(lower=0.99)), FakeEngine()
    stats = search(study, engine, trials=7, concurrency=3)
    assert states(study) == [TrialState.PRUNED] * 7 and stats.pruned == 7
    assert stats.model_epochs == 7  # every trial stopped after its first epoch
    assert engine.in_flight_seen[:3] == [3, 3, 1]  # 3, then 3 new ones, then the last


def test_a_diverged_trial_is_pruned_and_counts() -> None:
    study = queue_iteration_3(new_study(), 3)
    stats = search(study, FakeEngine(diverge={1}), trials=3, concurrency=2)
    trial = study.trials[1]
    assert trial.state == TrialState.PRUNED and trial.user_attrs["fail_reason"] == "diverged"
    assert stats.trained == 3 and stats.diverged == 1 and trained_count(study) == 3


@pytest.mark.parametrize("concurrency", [1, 3])
def test_out_of_memory_fails_the_trial_and_the_search_goes_on(concurrency) -> None:
    study, engine = queue_iteration_3(new_study(), 5), FakeEngine(out_of_memory={1})
    stats = search(study, engine, trials=4, concurrency=concurrency)
    trial = study.trials[1]
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "out of memory"
    assert trained_count(study) == 4 and stats.trained == 4 and stats.failed == 1
    if concurrency > 1:  # the capacity dropped to the trials still in flight: 2
        assert max(engine.in_flight_seen[1:]) == 2


def test_out_of_memory_alone_stops_the_search_after_a_streak() -> None:
    study = queue_iteration_3(new_study(), 20)
    with pytest.raises(torch.OutOfMemoryError):
        search(study, FakeEngine(out_of_memory=set(range(100))), trials=5, concurrency=4)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    # 4 in flight fail together, the capacity drops to 1, then OOM_ALONE_LIMIT alone in a row
    assert len(failed) == 4 + OOM_ALONE_LIMIT - 1
    assert all(t.user_attrs["fail_reason"] == "out of memory" for t in failed)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def test_idle_waits_for_a_lost_peer_trial_and_runs_it(tmp_path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", Heartbeat(1, 2))
    study = new_study(storage=storage)
    search(study, FakeEngine(), trials=1, concurrency=1, epochs=1)
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna's: heartbeats are for Study.optimize
        peer = study.ask()  # a peer's running trial, whose worker is killed after its first heartbeat
    storage.record_heartbeat(trial_id(peer))
    start = time.monotonic()
    stats = search(study, FakeEngine(), trials=2, concurrency=2, epochs=1)
    assert time.monotonic() - start >= 2  # waited out the grace period
    assert stats.requeued == 1 and stats.trained == 1 and trained_count(study) == 2
    lost = study.trials[peer.number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == "worker lost"


def test_idle_without_heartbeats_does_not_wait_forever() -> None:
    study = new_study()  # in memory: a lost trial would never be found
    study.ask()  # running, forever
    stats = search(study, FakeEngine(), trials=1, concurrency=1)
    assert stats.trained == 0 and trained_count(study) == 0


def test_a_signal_during_a_storage_call_waits_for_the_next_safe_point() -> None:
    study, sent = new_study(), []

    def signal_while_reporting(trial, config, stats) -> None:  # noqa: ANN001 - between report and prune
        if not sent:
            sent.append(trial.number)
            os.kill(os.getpid(), signal.SIGINT)

    ctx = make_ctx(1, on_epoch=signal_while_reporting)
    with interrupts_as_exceptions(), pytest.raises(Interrupted) as raised:
        search(study, FakeEngine(), trials=6, concurrency=3, epochs=1, ctx=ctx)
    assert raised.value.exit_code == 130
    by_number = {t.number: t for t in study.trials}
    # the trial told and the two beside it in the same epoch: their storage calls all went through
    assert by_number[sent[0]].state == TrialState.COMPLETE
    assert states(study) == [TrialState.COMPLETE] * 3 and trained_count(study) == 3
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def test_a_signal_while_training_stops_at_once_and_fails_the_trials_in_flight() -> None:
    study = new_study()

    def signal_in_second_epoch(engine: FakeEngine) -> None:
        if engine.advances == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with interrupts_as_exceptions(), pytest.raises(Interrupted) as raised:
        search(study, FakeEngine(on_advance=signal_in_second_epoch), trials=6, concurrency=3)
    assert raised.value.exit_code == 143
    trained = [t for t in study.trials if "rejected" not in t.user_attrs]
    assert len(trained) == 3 and all(t.state == TrialState.FAIL for t in trained)
    assert all(t.user_attrs["fail_reason"] == "interrupted" for t in trained)
    assert all(len(t.intermediate_values) == 1 for t in trained)  # the first epoch was reported
