"""Epoch time of iteration 3: the project's trainer against the seed-style pipeline, same run; and the
aggregate throughput (model-epochs/s) of K copies trained at once in one process, as separate models
or fused into one network.

The seed-style pipeline is the usual notebook recipe: torchvision's MNIST dataset, PIL RandomRotation
and ToTensor per image, a DataLoader with 2 workers, batch 128, torch.optim.SGD.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from mnist_arch.data import MEAN, STD, Mnist
from mnist_arch.fused import FusedBank
from mnist_arch.iterations import get_iteration
from mnist_arch.members import Member
from mnist_arch.model import build_model
from mnist_arch.trainer import DeviceData, Evaluation, TrainingRun, train
from search.study.study import decision_epochs

SEED_BATCH = 128
SEED_WORKERS = 2


@dataclass
class BenchResult:
    device_name: str
    images: int
    epochs: int
    seed_sec_per_epoch: float
    project_sec_per_epoch: float
    step: str  # how the trainer's step ran: "CUDA graph" | "compiled" | "eager"
    levels: list[ConcurrentLevel] = field(default_factory=list)
    fused: list[ConcurrentLevel] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.seed_sec_per_epoch / self.project_sec_per_epoch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model} ({torch.get_num_threads()} threads)"


def project_epochs(data: Mnist, device: torch.device, epochs: int) -> tuple[list[float], str]:
    """Seconds of each epoch of the trainer as it trains this run (on CUDA a graph; on the CPU compiled
    where `compile_pays`, the first epoch, which compiles, then left out when there are more), and how
    the step ran."""
    config = get_iteration("iteration-3").config
    result = train(config, DeviceData.from_mnist(data, device), epochs=epochs, seed=0)
    seconds = [e.seconds for e in result.history]
    if result.compiled and len(seconds) > 1:
        seconds = seconds[1:]
    return seconds, "CUDA graph" if result.graph else "compiled" if result.compiled else "eager"


def seed_pipeline_epochs(data: Mnist, device: torch.device, epochs: int) -> list[float]:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    config = get_iteration("iteration-3").config
    with tempfile.TemporaryDirectory() as root:
        _write_raw_mnist(data, Path(root) / "MNIST" / "raw")
        transform = transforms.Compose(
            [
                transforms.RandomRotation(config.train.rotation, fill=0),
                transforms.ToTensor(),
                transforms.Normalize((MEAN,), (STD,)),
            ]
        )
        dataset = datasets.MNIST(root, train=True, download=False, transform=transform)
        loader = DataLoader(
            Subset(dataset, range(len(data.train_labels))),
            batch_size=SEED_BATCH,
            shuffle=True,
            num_workers=SEED_WORKERS,
            pin_memory=device.type == "cuda",
            persistent_workers=True,
        )
        torch.manual_seed(0)
        model = build_model(config.arch).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.train.lr, momentum=config.train.momentum)
        times = []
        for _ in range(epochs):
            model.train()
            start = time.perf_counter()
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                optimizer.zero_grad()
                F.cross_entropy(model(images), labels).backward()
                optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return times


def _write_raw_mnist(data: Mnist, raw: Path) -> None:
    """The training pool as the IDX files torchvision's MNIST class reads (test set: a stub)."""
    raw.mkdir(parents=True)
    images, labels = data.train_images.cpu(), data.train_labels.cpu()
    n = len(labels)
    for prefix, count in (("train", n), ("t10k", 1)):
        header = (2051).to_bytes(4, "big") + count.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            header + images[:count].to(torch.uint8).numpy().tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            (2049).to_bytes(4, "big")
            + count.to_bytes(4, "big")
            + labels[:count].to(torch.uint8).numpy().tobytes()
        )


@dataclass
class ConcurrentLevel:
    concurrency: int  # trials in flight
    model_epochs_per_second: float  # all trials together
    bytes_per_trial: int | None  # CUDA: peak allocation of the level over its trials


def concurrent_throughput(data: DeviceData, concurrency: int, epochs: int) -> ConcurrentLevel:
    """K copies of iteration 3 (seeds 0..K-1) interleaved step by step, as the concurrent search runs them.

    On CUDA epochs from the second on are timed (the first holds warm-up and graph capture), on the CPU
    all of them; evaluation is part of a model-epoch where a search measures it (`search_evaluation`).
    """
    config = get_iteration("iteration-3").config
    evaluation = search_evaluation(epochs)
    with _measured(data.train_x.device) as memory:
        runs = [TrainingRun(config, data, seed=seed, evaluation=evaluation) for seed in range(concurrency)]
        seconds = _timed_epochs(
            epochs,
            first_timed_epoch(data.train_x.device, epochs),
            begin=lambda epoch: [run.begin_epoch(epoch) for run in runs],
            done=lambda: runs[0].epoch_done,  # the same number of steps for every copy
            step=lambda: [run.step() for run in runs],
            end=lambda: [run.end_epoch() for run in runs],
        )
    return _level(concurrency, epochs, seconds, memory)


def fused_throughput(data: DeviceData, concurrency: int, epochs: int) -> ConcurrentLevel:
    """K copies of iteration 3 (seeds 0..K-1) as one FusedBank; timed like `concurrent_throughput`."""
    config = get_iteration("iteration-3").config
    with _measured(data.train_x.device) as memory:
        bank = FusedBank([Member.start(config, data, seed=seed) for seed in range(concurrency)], data)
        seconds = _timed_epochs(
            epochs,
            first_timed_epoch(data.train_x.device, epochs),
            begin=lambda epoch: bank.begin_epoch(),
            done=lambda: bank.epoch_done,
            step=bank.step,
            end=lambda: bank.end_epoch(search_evaluation(epochs)),
        )
    return _level(concurrency, epochs, seconds, memory)


def search_evaluation(epochs: int) -> Evaluation:
    """What a default search of `epochs` measures: validation at the rung pruner's epochs and the last,
    test at the last."""
    return Evaluation(epochs, decision_epochs("rungs", epochs), test_with_val=False)


def first_timed_epoch(device: torch.device, epochs: int) -> int:
    """CUDA: the second (the first holds warm-up and graph capture), unless there is one; CPU: the first."""
    return min(2, epochs) if device.type == "cuda" else 1


def _timed_epochs(epochs: int, first_timed: int, *, begin, done, step, end) -> float:  # noqa: ANN001
    """Seconds of the epochs from `first_timed` on."""
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        if epoch == first_timed:
            start = time.perf_counter()
        begin(epoch)
        while not done():
            step()
        end()
    return time.perf_counter() - start


class _measured:
    """Peak CUDA memory allocated inside the block, above what was allocated before it."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, None

    def __enter__(self) -> _measured:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base


def _level(concurrency: int, epochs: int, seconds: float, memory: _measured) -> ConcurrentLevel:
    model_epochs = concurrency * (epochs - first_timed_epoch(memory.device, epochs) + 1)
    peak = memory.peak // concurrency if memory.peak is not None else None
    return ConcurrentLevel(concurrency, model_epochs / seconds, peak)


def run_benchmark(
    data: Mnist,
    device: torch.device,
    epochs: int,
    concurrency: tuple[int, ...] = (),
    fused: tuple[int, ...] = (),
) -> BenchResult:
    if fused and 1 not in concurrency:
        concurrency = (1, *concurrency)  # the fused rows' baseline: one trial, evaluation included
    seed_times = seed_pipeline_epochs(data, device, epochs)
    project_times, step = project_epochs(data, device, epochs)
    on_device = DeviceData.from_mnist(data, device) if concurrency or fused else None
    # The median keeps one-off costs (worker start-up, graph capture) out of the figure.
    return BenchResult(
        device_name(device),
        len(data.train_labels),
        epochs,
        statistics.median(seed_times),
        statistics.median(project_times),
        step,
        [concurrent_throughput(on_device, k, epochs) for k in concurrency],
        [fused_throughput(on_device, k, epochs) for k in fused],
    )


def append_markdown(result: BenchResult, path: Path) -> None:
    if not path.exists():
        path.write_text(
            "# Benchmarks\n\nWritten by `mnist-arch bench`: iteration 3, seconds per training epoch "
            "(median over the run's epochs), the seed-style pipeline and the project's trainer in "
            "the same run.\n\n## Single trial\n\n"
            "| date | device | torch | images | epochs | seed pipeline s/epoch | mnist-arch s/epoch "
            "| step | speedup |\n|---|---|---|---|---|---|---|---|---|\n"
        )
    row = (
        f"| {datetime.date.today()} | {result.device_name} | {torch.__version__} | "
        f"{result.images:,} | {result.epochs} | {result.seed_sec_per_epoch:.2f} | "
        f"{result.project_sec_per_epoch:.2f} | {result.step} | "
        f"{result.speedup:.2f}x |\n"
    )
    text = append_table_rows(path.read_text(), "\n## Single trial\n", row, "")
    if result.levels:
        single = result.levels[0].model_epochs_per_second if result.levels[0].concurrency == 1 else None
        rows = "".join(_level_row(result, level, single) for level in result.levels)
        text = append_table_rows(text, "\n## Concurrent trials\n", rows, CONCURRENT_HEADER)
    if result.fused:
        single = next(level.model_epochs_per_second for level in result.levels if level.concurrency == 1)
        rows = "".join(_level_row(result, level, single) for level in result.fused)
        text = append_table_rows(text, "\n## Fused trials\n", rows, FUSED_HEADER)
    path.write_text(text)


CONCURRENT_HEADER = (
    "\n## Concurrent trials\n\nWritten by `mnist-arch bench --concurrency K,...`: K copies of iteration 3 "
    "trained at once in one process, one step each in turn (on CUDA each with its own graph and stream); "
    "aggregate model-epochs per second over the epochs after the first (evaluation included); peak "
    "device memory per trial.\n\n"
    "| date | device | torch | images | epochs | trials in flight | model-epochs/s | vs 1 in flight "
    "| peak MiB per trial |\n|---|---|---|---|---|---|---|---|---|\n"
)


FUSED_HEADER = (
    "\n## Fused trials\n\nWritten by `mnist-arch bench --fused K,...`: K copies of iteration 3 trained as "
    "one network (grouped convolutions, one bank; on CUDA one graph); aggregate model-epochs per second "
    "over the epochs after the first (evaluation included), against one trial in flight in the same "
    "run; peak device memory per trial.\n\n"
    "| date | device | torch | images | epochs | trials fused | model-epochs/s | vs 1 in flight "
    "| peak MiB per trial |\n|---|---|---|---|---|---|---|---|---|\n"
)


def _level_row(result: BenchResult, level: ConcurrentLevel, single: float | None) -> str:
    ratio = f"{level.model_epochs_per_second / single:.2f}x" if single else "-"
    memory = f"{level.bytes_per_trial / 2**20:.0f}" if level.bytes_per_trial is not None else "-"
    return (
        f"| {datetime.date.today()} | {result.device_name} | {torch.__version__} | {result.images:,} | "
        f"{result.epochs} | {level.concurrency} | {level.model_epochs_per_second:.3g} | {ratio} | "
        f"{memory} |\n"
    )


def append_table_rows(text: str, marker: str, rows: str, header: str) -> str:
    """Markdown `text` with `rows` after the last row of the table of the section that starts at
    `marker`; the section (`header`) is added at the end if missing."""
    if marker not in text:
        return text.rstrip("\n") + "\n" + header + rows if header else text + rows
    head, tail = text.split(marker, 1)
    table_end = _table_end(tail)
    return head + marker + tail[:table_end] + rows + tail[table_end:]


def _table_end(section: str) -> int:
    """Offset just after the last table row of a section (rows start with '|')."""
    offset, end = 0, 0
    for line in section.splitlines(keepends=True):
        offset += len(line)
        if line.startswith("|"):
            end = offset
        elif end and line.strip():
            break
    return end
