"""Ways to run iteration 3's training step on the CPU, measured in one run against the plain eager step.

One step is forward, backward and SGD on a batch of 128 real training images. Variants: the tensor layout
(usual NCHW, channels-last for the 3x3 convs only, channels-last throughout),
torch.compile (inductor's C++ kernels fuse batch norm, ReLU and dropout; its compile time is a cost each
new architecture pays) and bf16 autocast. The trainer keeps what wins; the table goes to BENCHMARKS.md:
    python scripts/measure_cpu_step.py --data DIR [--steps 60] [--write]
With --seeds N it then trains iteration 3 with the trainer, eager and compiled, seeds 0..N-1, on --subset
images for --epochs, and prints the final accuracies' mean and spread of each (does compiling change them?).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# An empty compile cache, so that warm-up is what a new architecture costs (set before torch reads it).
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mnist-arch-inductor-")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_arch import DeviceData, get_iteration, load_mnist, train  # noqa: E402
from mnist_arch.model import build_model  # noqa: E402
from mnist_arch.pixels import normalize  # noqa: E402
from search.run.benchmark import append_table_rows, device_name  # noqa: E402

SECTION = "## CPU step"
BATCH = 128
EPOCH_IMAGES = 55_000


class ChannelsLastConv2d(nn.Conv2d):
    """Convolves channels-last, hands back the usual layout (batch norm and ReLU stay in it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


def channels_last_convs(model: nn.Module) -> tuple[nn.Module, bool]:
    for module in model.modules():
        if type(module) is nn.Conv2d and module.in_channels > 1 and module.kernel_size != (1, 1):
            module.__class__ = ChannelsLastConv2d  # same parameters, no random numbers drawn
    return model, False


class Autocast(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x).float()


def variants() -> dict[str, Callable[[nn.Module], tuple[nn.Module, bool]]]:
    """name -> (model -> (model to step, whether its input goes channels-last))."""

    return {
        "eager, usual layout (before)": lambda m: (m, False),
        "eager, channels-last 3x3 convs only": channels_last_convs,
        "eager, channels-last throughout": lambda m: (m.to(memory_format=torch.channels_last), True),
        "torch.compile, usual layout": lambda m: (torch.compile(m), False),
        "torch.compile, channels-last throughout": lambda m: (
            torch.compile(m.to(memory_format=torch.channels_last)),
            True,
        ),
        "eager bf16 autocast, channels-last throughout": lambda m: (
            Autocast(m.to(memory_format=torch.channels_last)),
            True,
        ),
    }


def measure(make: Callable, images: torch.Tensor, labels: torch.Tensor, steps: int) -> tuple[float, float]:
    """(median seconds per step over `steps`, seconds of the first 3 steps: compile and warm-up)."""
    torch.manual_seed(0)
    model, last = make(build_model(get_iteration("iteration-3").config.arch))
    x = images.contiguous(memory_format=torch.channels_last) if last else images
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST folder (default: $MNIST_ARCH_DATA)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    parser.add_argument("--seeds", type=int, default=0, help="also compare eager and compiled accuracy")
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    data = load_mnist(args.data, subset=BATCH)
    images, labels = normalize(data.train_images), data.train_labels
    rows, base = [], None
    for name, make in variants().items():
        seconds, warm = measure(make, images, labels, args.steps)
        base = base or seconds
        epoch = seconds * EPOCH_IMAGES / BATCH
        ratio = base / seconds
        print(f"{name}: {1000 * seconds:.1f} ms/step, {epoch:.1f} s/epoch, {ratio:.2f}x, warm {warm:.1f} s")
        rows.append(
            f"| {datetime.date.today()} | {device_name(torch.device('cpu'))} | {torch.__version__} | {name} "
            f"| {1000 * seconds:.1f} | {epoch:.1f} | {base / seconds:.2f}x | {warm:.1f} |\n"
        )
    if args.seeds:
        compare_accuracy(args.data, args.subset, args.epochs, args.seeds)
    if args.write:
        path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
        path.write_text(append_table_rows(path.read_text(), f"\n{SECTION}\n", "".join(rows), HEADER))


def compare_accuracy(data_dir: str | None, subset: int, epochs: int, seeds: int) -> None:
    data = DeviceData.from_mnist(load_mnist(data_dir, subset), torch.device("cpu"))
    config = get_iteration("iteration-3").config
    for compiled in (False, True):
        runs = [train(config, data, epochs=epochs, seed=seed, compiled=compiled) for seed in range(seeds)]
        val = [100 * run.history[-1].val_acc for run in runs]
        test = [100 * run.history[-1].test_acc for run in runs]
        mode = "compiled" if compiled else "eager"
        per_seed = ", ".join(f"{t:.2f}" for t in test)
        print(
            f"iteration 3, {subset:,} images, {epochs} epochs, seeds 0..{seeds - 1}, {mode}: "
            f"val {_mean_std(val)} %, test {_mean_std(test)} % (test per seed: {per_seed})"
        )


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {spread:.2f}"


HEADER = (
    f"\n{SECTION}\n\nWritten by `python scripts/measure_cpu_step.py --write`: iteration 3's training step "
    "(forward, backward, SGD; batch 128 of real images) in each variant, median over the timed steps; "
    "the ratio is the plain eager step's time over the variant's, same run. Warm-up is the first three "
    "steps (torch.compile's compile time for one architecture, from an empty compile cache).\n\n"
    "| date | device | torch | variant | ms per step | s per 55,000-image epoch | vs eager | warm-up s |\n"
    "|---|---|---|---|---|---|---|---|\n"
)


if __name__ == "__main__":
    main()
