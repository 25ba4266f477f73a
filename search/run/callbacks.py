"""What a search and its confirmation tell as they go: the hooks, and what they are told.

Kept apart from the code that trains, so that the commands' printers import no engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from mnist_arch.config import CandidateConfig
    from mnist_arch.trainer import EpochStats
    from search.results.confirmations import ConfirmJob
    from search.run.settle import SearchStats


@dataclass(frozen=True)
class ConfirmPlan:
    """The confirmation runs about to train; `runs` 0 when every run is stored and nothing trains."""

    what: str  # the models confirmed, e.g. "4 models" or "5 searched model(s) and iteration-3"
    seeds: int  # seeds per model: 0 .. seeds-1
    epochs: int  # epochs of each run
    runs: int  # (model, seed) runs still to train
    images: int = 0  # training images per epoch (0 when nothing trains)
    device: str = ""  # where the runs train, e.g. "cuda:0" ("" when nothing trains)

    def line(self) -> str:
        seeds = f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"
        if self.runs == 0:
            return f"confirmation of {self.what} with {seeds}: every run is stored, nothing to train"
        return (
            f"confirming {self.what} with {seeds}: {self.runs} run{'s' if self.runs != 1 else ''} of "
            f"{self.epochs} epochs on {self.images:,} images ({self.device}); stored runs are reused"
        )


class ConfirmProgress:
    """What the confirmation stage tells as it goes. The default tells nothing; override what you need."""

    def confirming(self, plan: ConfirmPlan) -> None:
        """Before any run trains (also when none will)."""

    def confirm_epoch(self, job: ConfirmJob, seed: int, stats: EpochStats) -> None:
        """A confirmation run finished an epoch (`stats.epoch` of `plan.epochs`)."""

    def confirm_end(self) -> None:
        """After `confirming`, once the runs stopped training (finished or not)."""

    def note(self, text: str) -> None:
        """A line worth showing: confirmation skipped, or why Optuna's best trial is not the winner."""


@dataclass(frozen=True)
class SearchStart:
    """What a search is about to do, told once its study is open and before any trial trains."""

    study: str  # the study's name
    storage: str  # the storage URL, password masked
    trained: (
        int  # trained trials (complete or pruned) the study already holds; over-budget draws do not count
    )
    target: int  # trained trials it should hold at the end (settings.trials)
    devices: tuple[str, ...]  # one per worker process, e.g. ("cuda:0", "cuda:1"); one: trained here
    engine: str  # "separate" | "fused", as resolved for the first device
    images: int  # training images per epoch
    dataset: str  # the data's name, e.g. "MNIST"
    max_params: int  # the parameter budget
    epochs: int  # epochs per trial
    objective: str  # "val_acc" | "test_acc": the accuracy each trial reports and the search maximises
    confirmation: str = ""  # what the confirmation after the search will cost (search.run.sizing)


class SearchCallbacks(ConfirmProgress):
    """What a search tells as it goes; the default tells nothing. Override the hooks you need.

    With more than one worker the trials train in worker processes, which print their own lines: then
    only `started` and the confirmation hooks (`ConfirmProgress`) are called here."""

    def started(self, start: SearchStart) -> None:
        """The study is open (created or resumed); training starts next."""

    def epoch(self, trial: optuna.Trial, config: CandidateConfig, stats: EpochStats) -> None:
        """A trial finished an epoch (reported to the study already)."""

    def trial_done(self, trial: FrozenTrial) -> None:
        """A trial ended trained: complete, or pruned (diverged ones included)."""

    def trial_failed(self, trial: FrozenTrial) -> None:
        """A trial failed without counting (out of memory); over-budget draws are not told."""

    def searched(self, stats: SearchStats) -> None:
        """The search loop of this process ended; confirmation comes next."""
