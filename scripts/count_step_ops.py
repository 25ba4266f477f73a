"""Operators per training step, separate runs against fused banks: the kernel launches a GPU would wait on.

A tiny model's step on a GPU is launch-bound, so the number of operators (each at least one kernel) per
model-step says how far fusing can go before arithmetic takes over. Counted with torch.profiler on the
CPU (leaf ATen operators, views and allocations left out, a _foreach_ operator counted once as on CUDA),
so it runs anywhere:
    python scripts/count_step_ops.py --data DIR
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_arch import DeviceData, TrainingRun, get_iteration, load_mnist  # noqa: E402
from mnist_arch.fused import FusedBank  # noqa: E402
from mnist_arch.members import Member, group_members, padded_arch  # noqa: E402
from mnist_arch.model import conv_macs  # noqa: E402
from space.budget import check_budget  # noqa: E402
from space.space import SearchSpace  # noqa: E402

NOT_KERNELS = {
    "aten::empty", "aten::empty_strided", "aten::view", "aten::as_strided", "aten::t", "aten::transpose",
    "aten::permute", "aten::unsqueeze", "aten::expand", "aten::slice", "aten::select", "aten::reshape",
    "aten::_reshape_alias", "aten::alias", "aten::detach", "aten::resize_", "aten::squeeze",
    "aten::lift_fresh", "aten::result_type", "aten::_unsafe_view",
}  # fmt: skip


def operators(step: Callable[[], None]) -> int:
    step()  # the first call may take other paths (lazy initialisation)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(1 for event in prof.events() if _is_kernel(event))


def _is_kernel(event) -> bool:  # noqa: ANN001 - a profiler event
    """A leaf ATen operator, or a _foreach_ one: on CUDA a _foreach_ operator is one fused kernel (per
    chunk of tensors), while the CPU runs it tensor by tensor; those per-tensor parts are not counted."""
    if not event.name.startswith("aten::") or event.name in NOT_KERNELS:
        return False
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::_foreach_"):
            return False
        parent = parent.cpu_parent
    if event.name.startswith("aten::_foreach_"):
        return True
    return not any(child.name.startswith("aten::") for child in event.cpu_children)


def bank_step(bank: FusedBank) -> Callable[[], None]:
    bank.begin_epoch()
    bank.batch_index.copy_(bank.order[:, : bank.batch])
    return bank._step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_ARCH_DATA"))
    parser.add_argument("--mix", type=int, default=64, help="random in-budget draws for the mixed row")
    args = parser.parse_args()
    data = DeviceData.from_mnist(load_mnist(args.data, 4096), torch.device("cpu"))
    config = get_iteration("iteration-3").config

    run = TrainingRun(config, data, seed=0)
    run.begin_epoch(1)
    single = operators(run._step)
    print(f"separate run, iteration 3: {single} operators per step")
    for size in (8, 32):
        bank = FusedBank([Member.start(config, data, seed=seed) for seed in range(size)], data)
        count = operators(bank_step(bank))
        print(
            f"fused bank of {size} x iteration 3: {count} operators per step, {count / size:.1f} per model "
            f"({single * size / count:.0f}x fewer)"
        )

    space, rng, configs = SearchSpace.load(None), random.Random(0), []
    while len(configs) < args.mix:
        drawn = space.random_config(rng)
        if check_budget(drawn.arch, space.spec.max_params).fits:
            configs.append(drawn)
    members = [Member.start(drawn, data, seed=seed) for seed, drawn in enumerate(configs)]
    for max_padding in (1.5, float("inf")):
        groups = group_members(members, len(members), max_padding)
        count = sum(operators(bank_step(FusedBank(group, data))) for group in groups)
        needed = sum(conv_macs(drawn.arch) for drawn in configs)
        padded = sum(conv_macs(padded_arch([m.config.arch for m in g])) * len(g) for g in groups)
        print(
            f"{args.mix} random in-budget draws, padding limit {max_padding:g}: {len(groups)} banks, "
            f"{count / args.mix:.1f} operators per model-step ({single * args.mix / count:.1f}x fewer), "
            f"{padded / needed:.2f}x the convolution arithmetic needed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
