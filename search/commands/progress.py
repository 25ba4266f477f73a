"""Progress of a search: trials done, the current trial's epoch and accuracy, best so far.

In a terminal it is a live bar; when output goes to a file or a pipe (logs, CI, `| tee`) a live bar only
shows when it ends, so plain lines are printed instead: one at the start, one per finished trial, and one
at least every PLAIN_INTERVAL seconds while a trial trains.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mnist_arch.config import CandidateConfig
from mnist_arch.trainer import EpochStats
from search.results.confirmations import ConfirmJob
from search.run.callbacks import ConfirmPlan, ConfirmProgress, SearchCallbacks, SearchStart
from search.run.settle import SearchStats, throughput_line
from search.run.workers import trial_line

PLAIN_INTERVAL = 30.0  # seconds between plain progress lines while nothing else is printed
WIDE_COLUMNS = 200  # the width of a piped --wide table


def wide_console(wide: bool = False) -> Console:
    """The console of a command. In a terminal, the terminal's width. Piped (logs, CI, `| tee`), tables are
    laid out for $COLUMNS, else rich's 80 columns (WIDE_COLUMNS with `wide`), and other lines are never
    broken: one message stays one line of the log."""
    console = Console()
    if console.is_terminal:
        return console
    return Console(width=WIDE_COLUMNS if wide else None, soft_wrap=True)


def clock(seconds: float) -> str:
    """Elapsed time as H:MM:SS."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class SearchProgress:
    def __init__(
        self,
        console: Console,
        n_trials: int,
        done: int,
        epochs: int,
        key: str,
        *,
        live: bool | None = None,
        interval: float = PLAIN_INTERVAL,
    ) -> None:
        self.console = console
        self.n_trials = n_trials
        self.done = done
        self.epochs = epochs
        self.key = key  # "val_acc" | "test_acc"
        self.best: tuple[float, int] | None = None
        self.live = console.is_terminal if live is None else live
        self.interval = interval
        self.started = time.monotonic()
        self.current = "waiting for the first epoch"
        self._last_line = self.started
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="search-progress", daemon=True)
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
        if self.live:
            self.progress.__enter__()
        else:
            self._plain(
                f"started, {self.key.split('_')[0]} accuracy; a line per trial and every "
                f"{self.interval:.0f} s"
            )
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.__exit__(*exc)
        else:
            self._stop.set()
            self._ticker.join()

    def _best_text(self) -> str:
        return f"best {100 * self.best[0]:.2f}% (trial {self.best[1]})" if self.best else "best: none yet"

    def _plain(self, text: str) -> None:
        """One log line: elapsed time, trials done of the target, the news, best so far."""
        elapsed = time.monotonic() - self.started
        self.console.print(
            f"[{clock(elapsed)}] {self.done}/{self.n_trials} trials | {text} | {self._best_text()}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        self._last_line = time.monotonic()

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 4)):
            if time.monotonic() - self._last_line >= self.interval:
                self._plain(self.current)

    def on_epoch(self, trial, config: CandidateConfig, stats: EpochStats) -> None:  # noqa: ANN001
        value = getattr(stats, self.key)
        metric = self.key.split("_")[0]
        self.current = f"trial {trial.number} epoch {stats.epoch}/{self.epochs} {metric} {_pct(value)}"
        if self.live:
            self.progress.update(self.task, description=f"{self.current} | {self._best_text()}")

    def on_trial_done(self, trial: FrozenTrial) -> None:
        attrs = trial.user_attrs
        searched = trial.state == TrialState.COMPLETE and "baseline" not in attrs
        if searched and (self.best is None or trial.value > self.best[0]):
            self.best = (trial.value, trial.number)
        label = attrs.get("baseline", "searched")
        reason = f" ({attrs['fail_reason']})" if attrs.get("fail_reason") else ""
        epochs = attrs.get("epochs_run", 0)
        line = (
            f"trial {trial.number} ({label}) {trial.state.name.lower()}{reason}: "
            f"{attrs.get('n_params', 0):,} params, {epochs} epoch{'' if epochs == 1 else 's'}, "
            f"val {_pct(attrs.get('val_acc'))}, test {_pct(attrs.get('test_acc'))}, "
            f"{attrs.get('sec_per_epoch', 0):.2f} wall s/epoch"
        )
        self.done += 1
        self.current = "next trial, no epoch finished yet"
        if self.live:
            self.console.print(line, markup=False)  # plain text: rich would read [..] as markup
            self.progress.advance(self.task)
        else:
            self._plain(line)


class ConfirmationLines(ConfirmProgress):
    """Confirmation progress over the runs still to train (none when everything is stored): a bar in a
    terminal, plain lines in a pipe or a log (a line at the start and one per finished run)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.plan: ConfirmPlan | None = None
        self.bar: Progress | None = None
        self.start = time.monotonic()
        self.finished = 0

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def confirming(self, plan: ConfirmPlan) -> None:
        self.plan, self.finished = plan, 0
        self.console.print(plan.line(), soft_wrap=True)
        if plan.runs == 0:
            return
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("confirmation"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=self.console,
            )
            self.bar.add_task("", total=plan.runs * plan.epochs)
            self.bar.__enter__()
        else:
            self.start = time.monotonic()
            self._line(f"0/{plan.runs} runs | started")

    def confirm_epoch(self, job: ConfirmJob, seed: int, stats: EpochStats) -> None:
        epochs = self.plan.epochs
        text = f"{job.label} seed {seed} {_epoch_text(stats, epochs)}"
        if self.bar is not None:
            self.bar.update(self.bar.task_ids[0], advance=1, description=text)
        elif stats.epoch == epochs:
            self.finished += 1
            self._line(f"{self.finished}/{self.plan.runs} runs | {text}")

    def confirm_end(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def _line(self, text: str) -> None:
        elapsed = timedelta(seconds=int(time.monotonic() - self.start))
        self.console.print(f"[{elapsed}] confirmation {text}", highlight=False, markup=False)


def _epoch_text(stats: EpochStats, epochs: int) -> str:
    return f"epoch {stats.epoch}/{epochs} val {_pct(stats.val_acc)} test {_pct(stats.test_acc)}"


def _pct(accuracy: float | None) -> str:
    """'99.12%', or '-' for an accuracy not measured (after that epoch, or a pruned trial's test)."""
    return "-" if accuracy is None else f"{100 * accuracy:.2f}%"


class SearchLines(ConfirmationLines, SearchCallbacks):
    """`mnist-arch search`'s output as the search goes: its first line, the trials' progress (when they
    train in this process), the counts, then the confirmation's. A context manager: leaving it stops
    a live bar."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.trials: SearchProgress | None = None

    def __enter__(self) -> SearchLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_trials(*exc)
        self.confirm_end()

    def started(self, start: SearchStart) -> None:
        where = ", ".join(start.devices)
        self.console.print(
            f"study '{escape(start.study)}' in {escape(start.storage)}: {start.trained} trained trial(s), "
            f"target {start.target}; {len(start.devices)} worker(s) on {where} ({start.engine} engine), "
            f"{start.images:,} training images of {escape(start.dataset)}, "
            f"budget {start.max_params:,} parameters"
        )
        if start.confirmation:
            self.console.print(f"then confirmation: {escape(start.confirmation)}", highlight=False)
        if len(start.devices) == 1:
            self.trials = SearchProgress(
                self.console, start.target, start.trained, start.epochs, start.objective
            )
            self.trials.__enter__()

    def epoch(self, trial: optuna.Trial, config: CandidateConfig, stats: EpochStats) -> None:
        if self.trials is not None:
            self.trials.on_epoch(trial, config, stats)

    def trial_done(self, trial: FrozenTrial) -> None:
        if self.trials is not None:
            self.trials.on_trial_done(trial)

    def trial_failed(self, trial: FrozenTrial) -> None:
        self.console.print(trial_line(trial))

    def searched(self, stats: SearchStats) -> None:
        self._stop_trials(None, None, None)
        self.console.print(throughput_line(stats), soft_wrap=True)
        drawn = stats.trained + stats.rejected
        if drawn:
            self.console.print(
                f"{stats.trained} trained, {stats.pruned} pruned; {stats.rejected} of {drawn} "
                f"draws were over budget and rejected before training"
            )

    def _stop_trials(self, *exc: object) -> None:
        if self.trials is not None:
            self.trials.__exit__(*exc)
            self.trials = None
