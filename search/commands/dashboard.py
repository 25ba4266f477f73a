"""`mnist-arch dashboard`: optuna-dashboard on the study's storage and artifact folder."""

from __future__ import annotations

import argparse
import contextlib
import sys

from mnist_arch.errors import UsageError
from search.commands import SUMMARIES
from search.commands.args import positive_int
from search.export.artifacts import artifact_dir_for, open_artifact_store
from search.study.dashboard import check_port, exposure_warning, serve
from search.study.existing import no_study_error, open_existing_storage, study_names
from search.study.storage import DEFAULT_STORAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help=SUMMARIES["dashboard"],
        description="Starts optuna-dashboard on the storage: per trial its user attributes (parameters, "
        "receptive field, architecture, curves) and, for complete trials, the weights, layer table and "
        "learning curve as artifacts.",
    )
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, help=f"Optuna storage URL (default: {DEFAULT_STORAGE})"
    )
    parser.add_argument("--artifacts", metavar="DIR", help="artifact folder (default: beside a SQLite file)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; the dashboard has no login, so "
        "from elsewhere use an SSH tunnel: ssh -L 8080:localhost:8080 THIS_HOST)",
    )
    parser.add_argument("--port", type=positive_int, default=8080, help="port (default: 8080)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.port > 65535:
        raise UsageError(f"--port must be at most 65535, got {args.port}")
    storage = open_existing_storage(args.storage)
    names = study_names(storage)
    if not names:
        raise no_study_error(args.storage, "Optuna's tables, no study in them")
    check_port(args.host, args.port)
    folder = artifact_dir_for(args.storage, args.artifacts)
    store = open_artifact_store(folder, create=False)
    if args.artifacts and store is None:
        raise UsageError(f"--artifacts {args.artifacts} is not a folder")
    artifacts = f"artifacts from {folder}" if store else "no artifact folder"
    if (warning := exposure_warning(args.host, args.port)) is not None:
        print(warning, file=sys.stderr, flush=True)
    print(
        f"optuna-dashboard on http://{args.host}:{args.port}/dashboard: {len(names)} "
        f"study(ies) ({', '.join(names)}); {artifacts}; Ctrl+C stops it",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is the way to stop it
        serve(storage, args.host, args.port, store)
    return 0
