"""How fast one fused bank's layer runs in each formulation, forward and backward, for BENCHMARKS.md.

A bank of G members computes each of its convolutions as one grouped convolution (groups = G). This
times that layer (a padded 3x3 conv of C channels per member on 28x28 maps, batch B per member, the
block-1 conv that dominates a model's cost) as:
- cuDNN grouped convolution, fp32 (what the bank does), TF32 off, channels_last, bf16;
- unfolded patches times the members' weights as one batched matrix product (fp32, bf16);
- the whole layer (conv, ReLU, BatchNorm, dropout mask) eager, and under torch.compile (on CUDA, for
  the first shape only: compiling takes tens of seconds).

Figures are milliseconds per forward + backward, the median of --repeats timed runs after warm-up,
and the ratio to cuDNN fp32 (above 1: faster). Prints a markdown table last; with --out it is also
appended under '## Convolution formulations'.
Run: python scripts/measure_conv_kernels.py --device cuda --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search.run.benchmark import _append_row, device_name  # noqa: E402

HEADER = (
    "\n## Convolution formulations\n\nWritten by `scripts/measure_conv_kernels.py`: one bank layer "
    "(padded 3x3 conv, 28x28 maps), forward + backward, median of timed runs; the ratio is cuDNN "
    "fp32's time over this one's (above 1: faster).\n\n"
    "| date | device | torch | members x channels x batch | formulation | ms per fwd+bwd | vs cuDNN fp32 |\n"
    "|---|---|---|---|---|---|---|\n"
)


def grouped(x: torch.Tensor, w: torch.Tensor, groups: int) -> torch.Tensor:
    return F.conv2d(x, w, padding=1, groups=groups)


def unfolded(x: torch.Tensor, w: torch.Tensor, groups: int) -> torch.Tensor:
    """The grouped conv as unfolded patches (N, G, C*9, HW) times weights (G, C_out, C*9)."""
    n, _, h, width = x.shape
    cols = F.unfold(x, 3, padding=1).view(n, groups, -1, h * width)
    weight = w.view(groups, w.shape[0] // groups, -1)
    out = torch.matmul(weight.unsqueeze(0), cols)  # (N, G, C_out, HW)
    return out.reshape(n, -1, h, width)


def layer(conv: Callable, groups: int) -> Callable:
    """Conv, ReLU, training-mode BatchNorm and a dropout mask, as one bank layer computes them."""

    def run(x: torch.Tensor, w: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, mask: torch.Tensor):
        z = F.relu(conv(x, w, groups))
        z = F.batch_norm(z, None, None, gamma, beta, training=True)
        return z * mask

    return run


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def time_ms(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(
    args: argparse.Namespace, members: int, channels: int, *, compile_layer: bool
) -> list[tuple[str, float]]:
    device, b, g, c = torch.device(args.device), args.batch, members, channels
    generator = torch.Generator(device=device).manual_seed(0)
    x0 = torch.randn(b, g * c, 28, 28, device=device, generator=generator)
    w0 = torch.randn(g * c, c, 3, 3, device=device, generator=generator) / 9
    gamma, beta = torch.ones(g * c, device=device), torch.zeros(g * c, device=device)
    mask = (torch.rand(b, g * c, 1, 1, device=device, generator=generator) > 0.05).float() / 0.95
    grad = torch.randn(b, g * c, 28, 28, device=device, generator=generator)

    def case(fn: Callable, *, dtype: torch.dtype = torch.float32, channels_last: bool = False, full=False):
        x = x0.to(dtype).to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        w = w0.to(dtype).to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x.requires_grad_(True)
        w.requires_grad_(True)
        out_grad = grad.to(dtype)
        extra = (gamma, beta, mask.to(dtype)) if full else ()

        def step() -> None:
            out = fn(x, w, *extra) if full else fn(x, w, g)
            out.backward(out_grad)
            x.grad = w.grad = None

        return lambda: time_ms(step, device, args.repeats)

    rows: list[tuple[str, float]] = []

    def add(name: str, timer: Callable[[], float]) -> None:
        try:
            rows.append((name, timer()))
        except Exception as error:  # noqa: BLE001 - a formulation the device lacks is reported, not fatal
            print(f"{name}: failed ({type(error).__name__}: {str(error).splitlines()[0][:100]})", flush=True)
            return
        print(f"{members}x{channels}x{b} {name}: {rows[-1][1]:.3f} ms", flush=True)

    add("cuDNN grouped conv, fp32", case(grouped))
    if device.type == "cuda":
        with tf32(False):
            add("cuDNN grouped conv, fp32, TF32 off", case(grouped))
    add("cuDNN grouped conv, fp32, channels_last", case(grouped, channels_last=True))
    add("cuDNN grouped conv, bf16", case(grouped, dtype=torch.bfloat16))
    add("cuDNN grouped conv, bf16, channels_last", case(grouped, dtype=torch.bfloat16, channels_last=True))
    add("unfold + batched matmul, fp32", case(unfolded))
    add("unfold + batched matmul, bf16", case(unfolded, dtype=torch.bfloat16))
    add("whole layer (conv, ReLU, BN, dropout), eager fp32", case(layer(grouped, g), full=True))
    add("whole layer, eager bf16", case(layer(grouped, g), dtype=torch.bfloat16, full=True))
    if device.type == "cuda" and compile_layer:
        for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            started = time.perf_counter()
            compiled = torch.compile(layer(grouped, g))
            timer = case(compiled, dtype=dtype, full=True)
            add(f"whole layer, torch.compile {label}", lambda: timer())  # noqa: B023 - called at once
            print(f"  (compile and warm-up {time.perf_counter() - started:.0f} s)", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--members", default="32,128", help="bank sizes, comma-separated")
    parser.add_argument("--channels", default="8,16", help="channels per member, comma-separated")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    prefix = f"| {datetime.date.today()} | {device_name(device)} | {torch.__version__} |"
    lines = []
    shapes = [(int(m), int(c)) for m in args.members.split(",") for c in args.channels.split(",")]
    for members, channels in shapes:
        # compiling takes tens of seconds per shape: the first shape shows what it gives
        rows = measure(
            args, members, channels, compile_layer=args.compile and (members, channels) == shapes[0]
        )
        base = rows[0][1] if rows else float("nan")
        shape = f"{members} x {channels} x {args.batch}"
        lines += [f"{prefix} {shape} | {name} | {ms:.3f} | {base / ms:.2f}x |\n" for name, ms in rows]
    text = "".join(lines)
    if args.out is not None:
        existing = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(_append_row(existing, "\n## Convolution formulations\n", text, HEADER))
    print()
    print(HEADER.split("\n\n")[-1] + text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
