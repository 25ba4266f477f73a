"""`mnist-arch`: a thin root that registers one module per command."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

import optuna

from mnist_arch.config import ConfigError
from mnist_arch.errors import UsageError
from search.commands import COMMANDS
from search.storage import mask_url


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2), without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="mnist-arch",
        description="Search small MNIST CNNs and their training recipes under a parameter budget.",
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineErrorParser
    )
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI reports progress itself
    try:
        return args.run(args) or 0
    except (UsageError, ConfigError) as error:
        print(f"mnist-arch {args.command}: error: {mask_url(str(error))}", file=sys.stderr)
        return 2
    except Exception:
        # Unexpected: the traceback is the report, but a database error may quote the storage URL.
        print(mask_url(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
