"""`mnist-arch`: a thin root that registers one module per command."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from mnist_arch.config import ConfigError
from mnist_arch.errors import UsageError
from search.commands import SUMMARIES, load
from search.study.masking import mask_url


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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The root parser. Given the command line `argv`, only the command it names is imported and gets its
    options (the others are listed by name and summary); without `argv`, every command is."""
    chosen = next((arg for arg in argv if not arg.startswith("-")), None) if argv is not None else None
    parser = OneLineErrorParser(
        prog="mnist-arch",
        description="Search small MNIST CNNs and their training recipes under a parameter budget.",
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineErrorParser
    )
    for name, summary in SUMMARIES.items():
        if argv is None or name == chosen:
            load(name).register(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    import optuna  # here, not at the top: --help and bad arguments do not pay for importing it

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
