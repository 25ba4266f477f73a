"""Which confirmation names the true best model more often at equal cost: plain (top K x S seeds) or racing.

    python scripts/simulate_confirmation.py            # prints the table
    python scripts/simulate_confirmation.py --write    # and writes it into BENCHMARKS.md

The candidates are the 59 recorded unpruned 15-epoch searches of the default space (H200, full pool,
tests/fixtures/h200_curves.json): their final validation accuracies stand for the models' true means. A
simulated search sees each model once, with seed noise; the confirmation then draws fresh runs (true mean
+ noise) as search.run.confirmation would train them, and names the best mean. Seed noise: the std of one
run's final accuracy over seeds, measured at 0.05-0.10 points on the test set (BENCHMARKS.md, "Inside a
real search (GPU)": iteration 3 and the winners over 5 seeds); the validation split has half the test
set's images, so 0.10-0.15 points is its likely range. Each row: how often the named winner is the true
best, the mean shortfall of the winner's true accuracy from the best's, and the runs the plan trains.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from search.run.sizing import race_cost, race_plan  # noqa: E402

SECTION = "## Confirmation: plain against racing"
SIMULATIONS = 20000
NOISES = (0.0005, 0.0010, 0.0015)  # one run's std, as accuracy in [0, 1]
PLANS = [  # (models, seeds, rounds): --confirm-top, --confirm-seeds, --confirm-rounds
    (5, 3, 1),  # the plain confirmation of earlier releases
    (3, 5, 1),
    (8, 2, 1),
    (15, 1, 1),
    (4, 2, 2),
    (7, 1, 3),
    (8, 1, 3),
    (5, 2, 2),  # the default since racing
    (16, 2, 3),
]


def label(models: int, seeds: int, rounds: int) -> str:
    plan = race_plan(models, seeds, rounds)
    kind = "plain" if len(plan) == 1 else "race"
    return (
        f"{kind}: "
        + ", then ".join(f"{n} x {s}" for n, s in plan)
        + f" (`--confirm-top {models} --confirm-seeds {seeds} --confirm-rounds {rounds}`)"
    )


def truths() -> list[float]:
    curves = json.loads((REPO / "tests" / "fixtures" / "h200_curves.json").read_text())["curves"]
    return [curve["values"][-1] for curve in curves]


def simulate(
    true: list[float], models: int, seeds: int, rounds: int, noise: float, rng: random.Random
) -> tuple[bool, float]:
    """One search and its confirmation: (named the true best, shortfall of the winner's true mean)."""
    seen = sorted(range(len(true)), key=lambda i: true[i] + rng.gauss(0, noise), reverse=True)
    runs: dict[int, list[float]] = {}
    remaining = seen[:models]
    for kept, round_seeds in race_plan(models, seeds, rounds):
        remaining = remaining[:kept]
        for i in remaining:
            draws = runs.setdefault(i, [])
            draws += [true[i] + rng.gauss(0, noise) for _ in range(round_seeds - len(draws))]
        remaining.sort(key=lambda i: statistics.fmean(runs[i]), reverse=True)
    winner, best = remaining[0], max(true)
    return true[winner] == best, best - true[winner]


def table() -> str:
    true = truths()
    lines = [
        "| plan | runs | "
        + " | ".join(f"true best named, noise {100 * n:.2f} pt" for n in NOISES)
        + " | "
        + " | ".join(f"mean shortfall, {100 * n:.2f} pt" for n in NOISES)
        + " |",
        "|---|---|" + "---|" * (2 * len(NOISES)),
    ]
    for models, seeds, rounds in PLANS:
        hits, shortfalls = [], []
        for noise in NOISES:
            rng = random.Random(0)
            results = [simulate(true, models, seeds, rounds, noise, rng) for _ in range(SIMULATIONS)]
            hits.append(f"{100 * statistics.fmean(r[0] for r in results):.1f} %")
            shortfalls.append(f"{100 * statistics.fmean(r[1] for r in results):.3f} pt")
        cost = race_cost(race_plan(models, seeds, rounds))
        lines.append(
            f"| {label(models, seeds, rounds)} | {cost} | "
            + " | ".join(hits)
            + " | "
            + " | ".join(shortfalls)
            + " |"
        )
    ties = sum(value == max(true) for value in true)
    lines += [
        "",
        f"{SIMULATIONS:,} simulated searches per cell over {len(true)} recorded models ({ties} share the "
        "best recorded accuracy: naming any of them counts); the same random numbers for every plan.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    text = table()
    print(text)
    if parser.parse_args().write:
        path = REPO / "BENCHMARKS.md"
        content = path.read_text()
        body = f"{SECTION}\n\nCommand: `python scripts/simulate_confirmation.py --write`\n\n{text}\n"
        if SECTION in content:
            head, rest = content.split(SECTION, 1)
            tail = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
            content = head + body + ("\n" + tail if tail else "")
        else:
            content = content.rstrip() + "\n\n" + body
        path.write_text(content)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
