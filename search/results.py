"""The result table: the best searched models next to the three hand-designed iterations."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from mnist_arch.iterations import ITERATION_NAMES
from search.confirm import Confirmation, load_if_stored
from search.trials import is_trained
from search.winner import Winner, confirmed_winner, seed_range, trial_label

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
    """The latest trained trial of each iteration, in iteration order."""
    found: dict[str, FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False):
        name = trial.user_attrs.get("baseline")
        if name and is_trained(trial):
            found[name] = trial
    return [found[name] for name in ITERATION_NAMES if name in found]


def winner_trial(study: optuna.Study, winner: Winner | None) -> FrozenTrial | None:
    """The winner's trial in the study, if the attribute names one that exists."""
    trials = study.get_trials(deepcopy=False)
    if winner is None or not 0 <= winner.trial < len(trials):
        return None
    return trials[winner.trial]


def result_rows(study: optuna.Study, k: int = 5) -> list[ResultRow]:
    """Top k searched trials (plus the confirmed winner when it ranks lower), then the iterations."""
    top = top_trials(study, k)
    found = winner_trial(study, confirmed_winner(study))
    if found is not None and all(t.number != found.number for t in top):
        top.append(found)
    rows = [ResultRow(f"trial {t.number}", t) for t in top]
    rows += [ResultRow(t.user_attrs["baseline"], t) for t in baseline_trials(study)]
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def result_table(study: optuna.Study, k: int = 5) -> Table:
    """The rows of `result_rows`; with a confirmed winner, its mark and the seed means ± std."""
    winner = confirmed_winner(study)
    table = Table(title=f"study '{study.study_name}': top {k} next to the hand-designed iterations")
    columns = ["model", "params", "architecture", "val acc", "test acc"]
    if winner is not None:
        columns += [f"val ({winner.seeds} seeds)", f"test ({winner.seeds} seeds)"]
        table.caption = (
            f"{WINNER_MARK} confirmed winner: best mean validation accuracy over {seed_range(winner.seeds)} "
            f"({winner.epochs} epochs each) among {len(winner.candidates)} confirmed trial(s); "
            "val acc / test acc: the single search run"
        )
    for column in columns + ["epochs", "s/epoch", "state"]:
        table.add_column(column, justify="left" if column in ("model", "architecture") else "right")
    for row in result_rows(study, k):
        attrs = row.attrs
        state = row.trial.state.name.lower()
        if attrs.get("fail_reason"):
            state += f" ({attrs['fail_reason']})"
        cells = [
            row.name,
            f"{attrs.get('n_params', 0):,}",
            attrs.get("architecture", "-"),
            _pct(attrs.get("val_acc")),
            _pct(attrs.get("test_acc")),
        ]
        if winner is not None:
            if row.label == winner.label:
                cells[0] += f" {WINNER_MARK}"
            confirmed = _confirmation(study, row.label, winner)
            cells += [confirmed.val_text(), confirmed.text()] if confirmed else ["-", "-"]
        cells += [
            str(attrs.get("epochs_run", "-")),
            f"{attrs['sec_per_epoch']:.2f}" if "sec_per_epoch" in attrs else "-",
            state,
        ]
        table.add_row(*cells)
    return table


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
