"""Start-up time of the CLI: `--help` and per-command help, this tree against an earlier commit, one run.

    python scripts/measure_startup.py --before 48ca060 --repeats 7

Each command runs as a fresh `python -m search.cli ...` process with PYTHONPATH set to the tree; the figure
is the median wall time over the repeats, alternating the trees so that load on the machine hits both.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["dashboard", "--help"], ["search", "--help"])


def seconds(tree: Path, argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "search.cli", *argv],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else ():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} threads)"
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        add = ["git", "worktree", "add", "-q", "--detach", str(before), args.before]
        subprocess.run(add, cwd=REPO, check=True)
        try:
            print(f"{cpu_model()}, Python {platform.python_version()}")
            print("| command | before (s) | after (s) | after / before |")
            print("|---|---|---|---|")
            for argv in COMMANDS:
                times: dict[Path, list[float]] = {before: [], REPO: []}
                for _ in range(args.repeats):
                    for tree in times:
                        times[tree].append(seconds(tree, argv))
                old, new = statistics.median(times[before]), statistics.median(times[REPO])
                print(f"| `mnist-arch {' '.join(argv)}` | {old:.2f} | {new:.2f} | {new / old:.2f} |")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO, check=True)


if __name__ == "__main__":
    main()
