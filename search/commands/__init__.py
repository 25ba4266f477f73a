"""One module per `mnist-arch` command; each has register(subparsers) and run(args)."""

from search.commands import baselines, bench, dashboard, evaluate, export, report, search, space, train

COMMANDS = (search, space, baselines, bench, report, export, train, evaluate, dashboard)

__all__ = ["COMMANDS"]
