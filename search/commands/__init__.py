"""One module per `mnist-arch` command; each has register(subparsers) and run(args)."""

from search.commands import baselines, bench, search, space

COMMANDS = (search, space, baselines, bench)

__all__ = ["COMMANDS"]
