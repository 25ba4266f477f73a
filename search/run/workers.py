"""`search --workers N`: N worker processes on this machine, each running the search loop on the study.

The parent has already checked the input, created the study and queued the baselines; it starts the
workers (spawned: fresh interpreters, so no CUDA or storage state is shared), forwards SIGINT/SIGTERM
to them and fails the trials of workers that were killed (heartbeat, see search.run.heartbeat); each
worker runs the search loop as one process does (search.run.pipeline). The same command on other
machines against the same PostgreSQL joins in.
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
from collections.abc import Callable

import optuna
import torch
from optuna.trial import FrozenTrial

from mnist_arch.device import resolve_device
from mnist_arch.errors import UsageError
from search.run.heartbeat import fail_stale, heartbeat_from_env
from search.run.interrupts import SIGNALS, Interrupted, interrupts_as_exceptions
from search.run.settings import SearchSettings
from search.study.storage import mask_url
from search.study.trials import trained_count

# A worker's search: (settings, its device, the prefix of its lines); a module-level function, so that
# it pickles by name into the spawned process (search.run.pipeline's `_search_in_worker`).
WorkerSearch = Callable[[SearchSettings, torch.device, str], None]

SHARED = ("auto", "cpu", "cuda")  # device specs that several workers may share
# On the CPU one process per core with a thread each trains 1.23x the model-epochs/s of one process with
# every thread (BENCHMARKS.md, "CPU layouts"), but each extra process takes seconds to start (torch, the
# data): a search that trains fewer image-epochs than this keeps one process.
AUTO_WORKERS_MIN_IMAGE_EPOCHS = 200_000
AUTO_WORKERS_MAX = 16  # each holds its own copy of torch and the data


def auto_workers(settings: SearchSettings, trial_images: int) -> int:
    """--workers, or where not given: on the CPU one per core when the search is large enough to pay
    for starting them (`trial_images`, the trials left to train x their training images, x epochs),
    else 1."""
    if settings.workers is not None:
        return settings.workers
    names = [name.strip() for name in settings.device.split(",")]
    if len(names) != 1 or names[0] not in SHARED or resolve_device(names[0]).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0))
    work = trial_images * settings.epochs
    return min(cores, AUTO_WORKERS_MAX) if work >= AUTO_WORKERS_MIN_IMAGE_EPOCHS else 1


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


def run_workers(
    settings: SearchSettings, devices: list[torch.device], study: optuna.Study, work: WorkerSearch
) -> int:
    """Start one worker per device, each running `work`; wait for them all; the exit code of the whole
    search."""
    context = multiprocessing.get_context("spawn")
    cpu_workers = sum(device.type == "cpu" for device in devices) or 1
    threads = max(1, len(os.sched_getaffinity(0)) // cpu_workers)  # CPU workers share the cores
    processes = [
        context.Process(
            target=_worker_main,
            args=(work, settings, index, str(device), threads, os.getpid()),
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


def _worker_main(
    work: WorkerSearch, settings: SearchSettings, index: int, device: str, threads: int, parent: int
) -> None:
    """One worker process: `work` with its exit code (0, 1 error, 2 bad input, 128 + N signal N)."""
    prefix = f"[w{index}]"
    code = 0
    with interrupts_as_exceptions():
        try:
            _exit_with_parent(parent)
            if device == "cpu":
                torch.set_num_threads(threads)
            work(settings, torch.device(device), prefix)
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
