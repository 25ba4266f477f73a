"""Live progress of a search: trials done, the current trial's epoch and accuracy, best so far."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mnist_arch.config import CandidateConfig
from mnist_arch.trainer import EpochStats


def wide_console() -> Console:
    """A console; when output is piped (logs, CI) rich's 80 columns would fold the result table."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


class SearchProgress:
    def __init__(self, console: Console, n_trials: int, done: int, epochs: int, key: str) -> None:
        self.console = console
        self.epochs = epochs
        self.key = key  # "val_acc" | "test_acc"
        self.best: tuple[float, int] | None = None
        self.progress = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
        )
        self.task = self.progress.add_task("", total=n_trials, completed=done)

    def __enter__(self) -> SearchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def on_epoch(self, trial, config: CandidateConfig, stats: EpochStats) -> None:  # noqa: ANN001
        best = f" | best {100 * self.best[0]:.2f}% (trial {self.best[1]})" if self.best else ""
        value = getattr(stats, self.key)
        self.progress.update(
            self.task,
            description=f"trial {trial.number} epoch {stats.epoch}/{self.epochs} "
            f"{self.key.split('_')[0]} {100 * value:.2f}%{best}",
        )

    def on_trial_done(self, trial: FrozenTrial) -> None:
        attrs = trial.user_attrs
        searched = trial.state == TrialState.COMPLETE and "baseline" not in attrs
        if searched and (self.best is None or trial.value > self.best[0]):
            self.best = (trial.value, trial.number)
        label = attrs.get("baseline", "searched")  # plain text: rich would read [..] as markup
        reason = f" ({attrs['fail_reason']})" if attrs.get("fail_reason") else ""
        self.console.print(
            f"trial {trial.number} ({label}) {trial.state.name.lower()}{reason}: "
            f"{attrs.get('n_params', 0):,} params, {attrs.get('epochs_run', 0)} epochs, "
            f"val {100 * attrs.get('val_acc', 0):.2f}%, test {100 * attrs.get('test_acc', 0):.2f}%, "
            f"{attrs.get('sec_per_epoch', 0):.2f} s/epoch"
        )
        self.progress.advance(self.task)
