"""The CLI's start-up: `--help` and the dashboard do not import torch; every command still registers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from search.cli import main
from search.commands import SUMMARIES
from tests.helpers import REPO

HEAVY = ("torch", "optuna", "sqlalchemy", "matplotlib")


def modules_loaded_by(argv: list[str]) -> tuple[list[str], str]:
    """Run the CLI with `argv` in a fresh interpreter; the heavy modules it imported, and its stdout."""
    probe = (
        "import json, sys\n"
        "from search.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    *output, loaded = result.stdout.strip().splitlines()
    return json.loads(loaded), "\n".join(output)


def test_root_help_lists_every_command_without_importing_torch_or_optuna() -> None:
    loaded, output = modules_loaded_by(["--help"])
    assert loaded == []
    for name, summary in SUMMARIES.items():
        assert name in output
        assert summary.split()[0] in output


def test_dashboard_help_does_not_import_torch() -> None:
    loaded, output = modules_loaded_by(["dashboard", "--help"])
    assert "torch" not in loaded
    assert "--port" in output


@pytest.mark.parametrize("command", SUMMARIES)
def test_every_command_registers_its_options(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: mnist-arch {command}" in capsys.readouterr().out


def test_an_unknown_command_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serach"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'serach'" in err[0]
