"""Train reference designs with mnist-arch's trainer at full scale and compare with their published figures.

    python scripts/reproduce.py woolly-3762 iteration-3 --seeds 1 2 3 --device cpu
    python scripts/reproduce.py iteration-3 --variant "adam:optimizer=\"adam\",lr=0.005"
    python scripts/reproduce.py --table          # the table of every stored run, appended to BENCHMARKS.md

Each run trains on the whole 55,000-image pool (5,000 held out for validation) for the reference's own
epochs and stores its final-epoch validation and test accuracy as one JSON file under --runs
(default runs/reproduce/); a run already stored is not trained again, so runs can be started in
several processes (one thread each) and the table built once they are done. A variant changes recipe
or architecture fields of the reference (an ablation): NAME:field=value,field=value with JSON values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from mnist_arch.config import CandidateConfig  # noqa: E402
from mnist_arch.data import load_mnist  # noqa: E402
from mnist_arch.model import count_params  # noqa: E402
from mnist_arch.references import REFERENCE_NAMES, get_reference  # noqa: E402
from mnist_arch.trainer import DeviceData, train  # noqa: E402

SECTION = "## Reference designs at full scale"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"references to train ({', '.join(REFERENCE_NAMES)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variant", action="append", default=[], help="NAME:field=json,... (repeatable)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the reference's own)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    parser.add_argument("--data", default=os.environ.get("MNIST_ARCH_DATA"))
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "reproduce")
    parser.add_argument("--table", action="store_true", help="print the table of stored runs")
    parser.add_argument("--write", action="store_true", help="with --table: append it to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.names:
        data = DeviceData.from_mnist(load_mnist(args.data), torch.device(args.device))
        variants = [None, *args.variant] if not args.variant else args.variant
        for name in args.names:
            for variant in variants:
                for seed in args.seeds:
                    run_one(name, variant, seed, args.epochs, data, args.runs, args.device)
    if args.table:
        table = render_table(args.runs)
        print(table)
        if args.write:
            append_section(table)
    return 0


def variant_config(name: str, variant: str | None) -> tuple[str, CandidateConfig]:
    """The reference's config with the variant's fields replaced, and the variant's label."""
    config = get_reference(name).config
    if variant is None:
        return "as published", config
    label, _, assignments = variant.partition(":")
    arch, recipe = config.to_dict()["arch"], config.to_dict()["train"]
    for assignment in _split(assignments):
        key, _, value = assignment.partition("=")
        target = arch if key in arch else recipe
        if key not in target:
            raise SystemExit(f"unknown field {key!r} in variant {variant!r}")
        target[key] = json.loads(value)
    return label, CandidateConfig.from_dict({"arch": arch, "train": recipe})


def _split(assignments: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, current = [], 0, ""
    for char in assignments:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in [*parts, current] if p]


def run_one(
    name: str, variant: str | None, seed: int, epochs: int | None, data: DeviceData, runs: Path, device: str
) -> None:
    label, config = variant_config(name, variant)
    epochs = epochs or get_reference(name).epochs
    path = runs / f"{name}--{label.replace(' ', '_')}--e{epochs}--seed{seed}.json"
    if path.exists():
        return
    start = time.perf_counter()
    result = train(config, data, epochs=epochs, seed=seed)
    last = result.history[-1]
    record = {
        "reference": name,
        "variant": label,
        "variant_spec": variant,
        "config": config.to_dict(),
        "params": count_params(config.arch),
        "epochs": epochs,
        "seed": seed,
        "val_acc": last.val_acc,
        "test_acc": last.test_acc,
        "best_test_acc": max(e.test_acc for e in result.history),
        "curve": [[e.val_acc, e.test_acc] for e in result.history],
        "train_images": len(data.train_y),
        "seconds": time.perf_counter() - start,
        "machine": machine_name(torch.device(device)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    path.write_text(json.dumps(record, indent=1))
    print(
        f"{name} [{label}] seed {seed}: val {100 * last.val_acc:.2f} % test {100 * last.test_acc:.2f} % "
        f"({record['seconds']:.0f} s)",
        flush=True,
    )


def machine_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or 'CPU'} ({os.cpu_count()} cores)"


def render_table(runs: Path) -> str:
    records = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for record in records:
        groups.setdefault((record["reference"], record["variant"], record["epochs"]), []).append(record)
    order = {name: i for i, name in enumerate(REFERENCE_NAMES)}
    lines = [
        "| design | variant | params | epochs | seeds | val, final epoch | test, final epoch | published |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, label, epochs), group in sorted(
        groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] != "as published", kv[0][1])
    ):
        reference = get_reference(name)
        lines.append(
            f"| {name} | {label} | {group[0]['params']:,} | {epochs} | "
            f"{', '.join(str(r['seed']) for r in group)} | {_mean_std([r['val_acc'] for r in group])} | "
            f"{_mean_std([r['test_acc'] for r in group])} | {reference.published_note} |"
        )
    machines = sorted(
        {f"{r['machine']}, torch {r['torch']}, {r['threads']} thread(s) per run" for r in records}
    )
    images = sorted({r["train_images"] for r in records})
    lines.append("")
    lines.append(
        f"Trained on {', '.join(f'{n:,}' for n in images)} images, the 5,000-image validation split and the "
        f"10,000 test images held out; {'; '.join(machines)}; mean ± std over the seeds listed "
        f"({platform.python_version()})."
    )
    return "\n".join(lines)


def _mean_std(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f} %"
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f} %"


def append_section(table: str) -> None:
    """Replace the section's table in BENCHMARKS.md (the section's prose above the table is kept)."""
    path = REPO / "BENCHMARKS.md"
    text = path.read_text()
    command = (
        "`python scripts/reproduce.py --table --write` (runs from `python scripts/reproduce.py NAME ...`)"
    )
    body = f"{SECTION}\n\n<!-- reproduce:begin -->\nCommand: {command}\n\n{table}\n<!-- reproduce:end -->\n"
    if "<!-- reproduce:begin -->" in text:
        head, rest = text.split("<!-- reproduce:begin -->", 1)
        tail = rest.split("<!-- reproduce:end -->\n", 1)[1]
        text = head + body.split("\n\n", 1)[1] + tail
    elif SECTION in text:
        text = text.replace(SECTION + "\n", body, 1)
    else:
        text = text.rstrip() + "\n\n" + body
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
