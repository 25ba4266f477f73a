"""`search --workers N`: N worker processes on this machine, each running the search loop on the study.

The parent has already checked the input, created the study and queued the baselines; it starts the
workers (spawned: fresh interpreters, so no CUDA or storage state is shared), forwards SIGINT/SIGTERM
to them, fails the trials of workers that were killed (heartbeat, see search.run.heartbeat) and prints the
result table at the end. The same command on other machines against the same PostgreSQL joins in.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback

import optuna
import torch
from optuna.trial import FrozenTrial

from mnist_arch.data import load_mnist
from mnist_arch.device import resolve_device
from mnist_arch.errors import UsageError
from mnist_arch.trainer import DeviceData
from search.run.engines import expected_in_flight, make_engine
from search.run.heartbeat import fail_stale, heartbeat_from_env
from search.run.interrupts import SIGNALS, Interrupted, interrupts_as_exceptions
from search.run.scheduler import run_search, worker_name
from search.run.settings import SearchSettings
from search.run.trial import TrialContext
from search.study.storage import mask_url, open_storage
from search.study.study import open_search_study
from search.study.trials import trained_count
from space.space import SearchSpace

SHARED = ("auto", "cpu", "cuda")  # device specs that several workers may share


def plan_devices(spec: str, workers: int) -> list[torch.device]:
    """One device per worker. A list (cuda:0,cuda:1) pins one worker per device; auto/cuda spreads
    the workers over the visible GPUs, round robin; cpu (or auto without a GPU) shares the CPU."""
    names = [name.strip() for name in spec.split(",")]
    if len(names) == 1 and names[0] in SHARED:
        device = resolve_device(names[0])
        count = torch.cuda.device_count() if device.type == "cuda" else 0
        if count > 1 and device.index is None:
            return [torch.device("cuda", i % count) for i in range(workers)]
        return [device] * workers
    if workers > len(names):
        raise UsageError(
            f"--workers {workers} but --device pins {len(names)} device(s) ({spec}): one worker per "
            "pinned device; list more devices, use fewer workers, or --device auto to share them"
        )
    if len(set(names)) != len(names):
        raise UsageError(f"--device {spec} lists a device twice")
    return [resolve_device(name) for name in names[:workers]]


def trial_line(trial: FrozenTrial) -> str:
    """One line per finished trial, as the workers print it."""
    attrs = trial.user_attrs
    label = attrs.get("baseline", "searched")
    reason = f" ({attrs['fail_reason']})" if attrs.get("fail_reason") else ""
    line = f"trial {trial.number} ({label}) {trial.state.name.lower()}{reason}"
    if "val_acc" in attrs:
        line += (
            f": {attrs.get('n_params', 0):,} params, {attrs.get('epochs_run', 0)} epochs, "
            f"val {100 * attrs['val_acc']:.2f}%, {attrs.get('sec_per_epoch', 0):.2f} s/epoch"
        )
    return line


def run_workers(settings: SearchSettings, devices: list[torch.device], study: optuna.Study) -> int:
    """Start one worker per device, wait for them all; the exit code of the whole search."""
    context = multiprocessing.get_context("spawn")
    cpu_workers = sum(device.type == "cpu" for device in devices) or 1
    threads = max(1, len(os.sched_getaffinity(0)) // cpu_workers)  # CPU workers share the cores
    processes = [
        context.Process(
            target=_worker_main,
            args=(settings, index, str(device), threads, os.getpid()),
            name=f"mnist-arch worker {index}",
        )
        for index, device in enumerate(devices)
    ]
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in SIGNALS}
    try:
        for process in processes:
            process.start()
        _supervise(processes, study)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    codes = [process.exitcode for process in processes]
    if received:
        return 128 + received[0]
    if any(code == 1 for code in codes):
        return 1
    if any(code == 2 for code in codes):
        return 2
    if settings.timeout is None and trained_count(study) < settings.trials:
        print(f"the workers stopped before the study held {settings.trials} trained trials", file=sys.stderr)
        return 1
    return 0


def _supervise(processes: list[multiprocessing.process.BaseProcess], study: optuna.Study) -> None:
    reported: set[int] = set()
    heartbeat = heartbeat_from_env()
    while any(process.exitcode is None for process in processes):
        for process in processes:
            process.join(timeout=0.5 / len(processes))
        for index, process in enumerate(processes):
            code = process.exitcode
            if code is not None and code < 0 and index not in reported:
                reported.add(index)
                print(
                    f"worker {index} (pid {process.pid}) was killed by {signal.Signals(-code).name}; "
                    f"its trial is failed and queued again within {heartbeat.grace} s",
                    flush=True,
                )
        # The parent fails stale trials too, so a killed worker's trial waits no longer than needed;
        # the workers do the same, so a storage hiccup here is not fatal.
        with contextlib.suppress(Exception):
            fail_stale(study)


def _worker_main(settings: SearchSettings, index: int, device: str, threads: int, parent: int) -> None:
    """One worker process: its own storage connection, sampler seed and copy of the data."""
    prefix = f"[w{index}]"
    code = 0
    with interrupts_as_exceptions():
        try:
            _exit_with_parent(parent)
            if device == "cpu":
                torch.set_num_threads(threads)
            space = SearchSpace.load(settings.space, max_params=settings.max_params, epochs=settings.epochs)
            mnist = load_mnist(settings.data, settings.subset)
            storage = open_storage(settings.storage, heartbeat_from_env())
            # The parent's settings check, repeated: the space file or the data may have changed since.
            study, _ = open_search_study(
                settings,
                storage,
                space,
                mnist,
                in_flight=expected_in_flight(settings.concurrency, torch.device(device)),
                worker=worker_name(),
            )
            ctx = TrialContext.from_args(settings, space, DeviceData.from_mnist(mnist, torch.device(device)))
            engine = make_engine(settings.engine, space, ctx.data, settings.concurrency)
            print(f"{prefix} worker {worker_name()} on {device}", flush=True)
            say = lambda t: print(f"{prefix} {trial_line(t)}", flush=True)  # noqa: E731
            stats = run_search(study, ctx, engine, settings, on_trial_done=say, on_trial_failed=say)
            print(
                f"{prefix} done: {stats.trained} trained, {stats.rejected} over budget, "
                f"{stats.failed} failed, {stats.requeued} lost trial(s) requeued",
                flush=True,
            )
        except Interrupted as error:
            print(f"{prefix} interrupted ({error}): its running trial is marked failed", flush=True)
            code = error.exit_code
        except KeyboardInterrupt:
            code = 130
        except UsageError as error:
            print(f"mnist-arch search: error: {mask_url(str(error))}", file=sys.stderr, flush=True)
            code = 2
        except Exception:  # noqa: BLE001 - printed with the password masked, exit 1
            print(f"{prefix} {mask_url(traceback.format_exc())}", file=sys.stderr, end="", flush=True)
            code = 1
    sys.stdout.flush()
    os._exit(code)  # skip the spawn machinery's own exit handling: the code is ours


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL) stops like on SIGTERM instead of running on unsupervised."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
