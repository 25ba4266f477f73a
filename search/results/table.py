"""The result table: the best searched models next to the reference designs the study trained."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.markup import escape
from rich.table import Table

from mnist_arch.config import CandidateConfig
from mnist_arch.references import REFERENCE_NAMES
from search.results.confirmations import Confirmation, load_if_stored
from search.results.speed import SPEED_NOTE, in_flight, throughput
from search.results.tables import ARCH_LEGEND, arch_notation, compact_table, mean_std, percent
from search.results.winner import Winner, confirmed_winner, seed_range, trial_label
from search.study.trials import is_trained

WINNER_MARK = "★"


@dataclass(frozen=True)
class ResultRow:
    name: str  # "trial 12" or the iteration's name
    trial: FrozenTrial

    @property
    def attrs(self) -> dict:
        return self.trial.user_attrs

    @property
    def label(self) -> str:
        """Key of its confirmation runs: "trial-12" or the iteration's name."""
        return self.attrs.get("baseline") or trial_label(self.trial.number)


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The k best complete, within-budget searched trials, best first."""
    max_params = study.user_attrs.get("max_params")
    candidates = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "baseline" not in t.user_attrs
        and (max_params is None or t.user_attrs.get("n_params", 0) <= max_params)
    ]
    return sorted(candidates, key=lambda t: t.value, reverse=True)[:k]


def baseline_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The latest trained trial of each reference queued as a baseline, in reference order."""
    found: dict[str, FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False):
        name = trial.user_attrs.get("baseline")
        if name and is_trained(trial):
            found[name] = trial
    return [found[name] for name in REFERENCE_NAMES if name in found]


def winner_trial(study: optuna.Study, winner: Winner | None) -> FrozenTrial | None:
    """The winner's trial in the study, if the attribute names one that exists."""
    trials = study.get_trials(deepcopy=False)
    if winner is None or not 0 <= winner.trial < len(trials):
        return None
    return trials[winner.trial]


def shown_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The searched trials every table shows: the top k, best first, and the confirmed winner after them
    when it ranks lower."""
    top = top_trials(study, k)
    found = winner_trial(study, confirmed_winner(study))
    if found is not None and all(t.number != found.number for t in top):
        top.append(found)
    return top


def result_rows(study: optuna.Study, k: int = 5) -> list[ResultRow]:
    """The shown searched trials, then the references the study trained."""
    rows = [ResultRow(f"trial {t.number}", t) for t in shown_trials(study, k)]
    rows += [ResultRow(t.user_attrs["baseline"], t) for t in baseline_trials(study)]
    return rows


def result_table(study: optuna.Study, k: int = 5, *, wide: bool = False) -> Table:
    """The rows of `result_rows`; with a confirmed winner, its mark and the seed means ± std.

    The default fits 80 columns (short architecture, accuracies in percent); `wide` keeps every column.
    """
    winner = confirmed_winner(study)
    rows = result_rows(study, k)
    title = f"study '{escape(study.study_name)}': top {k} next to the references"
    header, cells = (_wide_cells if wide else _compact_cells)(study, rows, winner)
    table = compact_table(title, header, cells, left=("model", "arch", "architecture", "state"), fit=not wide)
    notes = []
    if winner is not None:
        notes.append(
            f"{WINNER_MARK} confirmed winner: best mean validation accuracy over {seed_range(winner.seeds)} "
            f"({winner.epochs} epochs each) among {len(winner.candidates)} confirmed trial(s); "
            "val / test: the single search run"
        )
    speed = throughput(study.get_trials(deepcopy=False))
    if speed is not None:
        notes.append(speed.line())
    notes.append(f"wall s/ep: {SPEED_NOTE}" if wide else ARCH_LEGEND + "; --wide for every column")
    table.caption = "\n".join(notes)
    return table


def _state(row: ResultRow) -> str:
    state = row.trial.state.name.lower()
    reason = row.attrs.get("fail_reason")
    return f"{state} ({reason})" if reason else state


def _model(row: ResultRow, winner: Winner | None) -> str:
    return f"{row.name} {WINNER_MARK}" if winner is not None and row.label == winner.label else row.name


def _confirmed_cells(study: optuna.Study, row: ResultRow, winner: Winner) -> list[str]:
    confirmed = _confirmation(study, row.label, winner)
    if confirmed is None:
        return ["-", "-"]
    return [mean_std(confirmed.val_mean, confirmed.val_std), mean_std(confirmed.mean, confirmed.std)]


def _compact_cells(
    study: optuna.Study, rows: list[ResultRow], winner: Winner | None
) -> tuple[list[str], list[list[str]]]:
    header = ["model", "params", "arch", "val %", "test %"]
    if winner is not None:
        header += [f"val %\n{winner.seeds} seeds", f"test %\n{winner.seeds} seeds"]
    show_state = any(_state(row) != "complete" for row in rows)
    if show_state:
        header.append("state")
    cells = []
    for row in rows:
        config = row.attrs.get("config")
        arch = arch_notation(CandidateConfig.from_dict(config).arch) if config else "-"
        line = [
            _model(row, winner),
            f"{row.attrs.get('n_params', 0):,}",
            arch,
            percent(row.attrs.get("val_acc")),
            percent(row.attrs.get("test_acc")),
        ]
        if winner is not None:
            line += _confirmed_cells(study, row, winner)
        if show_state:
            line.append(_state(row))
        cells.append(line)
    return header, cells


def _wide_cells(
    study: optuna.Study, rows: list[ResultRow], winner: Winner | None
) -> tuple[list[str], list[list[str]]]:
    header = ["model", "params", "architecture", "val %", "test %"]
    if winner is not None:
        header += [f"val, {winner.seeds} seeds", f"test, {winner.seeds} seeds"]
    header += ["epochs", "wall s/ep", "in flight", "state"]
    sharing = in_flight(study.get_trials(deepcopy=False))
    cells = []
    for row in rows:
        attrs = row.attrs
        line = [
            _model(row, winner),
            f"{attrs.get('n_params', 0):,}",
            attrs.get("architecture", "-"),
            percent(attrs.get("val_acc")),
            percent(attrs.get("test_acc")),
        ]
        if winner is not None:
            line += _confirmed_cells(study, row, winner)
        line += [
            str(attrs.get("epochs_run", "-")),
            f"{attrs['sec_per_epoch']:.2f}" if "sec_per_epoch" in attrs else "-",
            str(sharing.get(row.trial.number, "-")),
            _state(row),
        ]
        cells.append(line)
    return header, cells


def _confirmation(study: optuna.Study, label: str, winner: Winner) -> Confirmation | None:
    return load_if_stored(study, label, winner.seeds, winner.epochs, winner.subset)


def fault_lines(study: optuna.Study) -> list[str]:
    """One line per trial that failed or diverged, with its fail_reason (a requeued trial says so)."""
    lines = []
    retried = {
        n: t.number for t in study.get_trials(deepcopy=False) for n in t.system_attrs.get("retry_history", [])
    }
    for trial in study.get_trials(deepcopy=False):
        reason = trial.user_attrs.get("fail_reason")
        if trial.state == TrialState.FAIL or reason:
            line = f"trial {trial.number} {trial.state.name.lower()} ({reason or 'failed'})"
            if trial.number in retried:
                line += f", run again as trial {retried[trial.number]}"
            lines.append(line)
    return lines
