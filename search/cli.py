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

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> object:
        # Python 3.11 turns `--flag=--` into [] instead of a value or an error.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
        return super()._get_values(action, arg_strings)

    def error(self, message: str) -> None:  # type: ignore[override]
        # The message may quote a mistyped option's value: a storage URL with its password.
        self.exit(2, f"{self.prog}: error: {one_line(mask_url(message))} (see --help)\n")


def one_line(text: str) -> str:
    """`text` with newlines and other unprintable characters escaped, so an error stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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
        print(f"mnist-arch {args.command}: error: {one_line(mask_url(str(error)))}", file=sys.stderr)
        return 2
    except Exception:
        # Unexpected: the traceback is the report, but a database error may quote the storage URL.
        print(mask_url(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
