"""The confirmed winner: the best mean validation accuracy over seeds among the top searched trials.

A search's single best trial is the maximum of noisy draws, so its accuracy is biased upwards. At the
end of a search the top K trials are retrained with seeds 0..N-1 (runs stored, see
search.results.confirmations; the training is search.run.confirmation's) and the one with the best mean
validation accuracy wins; test accuracy is shown, never used to choose.
iteration-3, the reference hand design, is confirmed with the same seeds when the study has baselines.
The winner is the study user attribute "winner" (JSON, shape in `Winner.to_json`) and a dashboard note.

Optuna's own best trial (`study.best_trial`, `optuna best-trial`) is the best single value among the
complete trials within the budget, and it can name another trial: a baseline (queued references are
complete trials with a value), or a searched trial whose single run was lucky and whose mean over seeds
came second. mnist-arch keeps both and says so wherever it names its winner (`OPTUNA_BEST_ATTR`, the
notes, `export --trial best`). The baselines stay ordinary complete trials: hiding them from
`best_trial` would take an infeasible constraint value or another state, and TPE reads both: it ranks
a pruned trial after every complete one and an infeasible trial after every feasible one, so iteration-3,
a good point it learns from, would count as a bad one, and the draws after it, with every result, would
change. Confirmation runs are stored as study attributes, not trials, so they never enter Optuna's best.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.results.confirmations import Confirmation, load_if_stored, rank_by_confirmation
from search.study.optuna_private import live_trial

WINNER_ATTR = "winner"
# {"trial": N, "same_as_winner": bool, "why": str | None}: Optuna's best trial next to the winner
OPTUNA_BEST_ATTR = "optuna_best"
REFERENCE = "iteration-3"
NOTE_MARK = "**Confirmed winner"  # a note section written here starts with it ...
NOTE_END = "\n\n---\n\n"  # ... and ends with this rule; the rest of the note is kept


def trial_label(number: int) -> str:
    """Key of a searched trial's confirmation runs."""
    return f"trial-{number}"


def seed_range(seeds: int) -> str:
    """'seeds 0..2', or 'seed 0' for one."""
    return "seed 0" if seeds == 1 else f"seeds 0..{seeds - 1}"


def _pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f} %"


@dataclass(frozen=True)
class Reference:
    label: str
    val_mean: float
    val_std: float
    test_mean: float
    test_std: float

    def text(self) -> str:
        val, test = _pm(self.val_mean, self.val_std), _pm(self.test_mean, self.test_std)
        return f"{self.label} val {val} test {test}"


@dataclass(frozen=True)
class Winner:
    """The confirmed winner as stored in the study ("winner" user attribute). Accuracies are fractions
    (0.9941 is 99.41 %), means and sample standard deviations over the seeds' final epochs."""

    trial: int  # its trial number in the study
    label: str  # key of its confirmation runs, "trial-12"
    n_params: int  # parameters of its model
    seeds: int  # confirmation runs per model, seeds 0..seeds-1
    epochs: int  # epochs of each confirmation run
    subset: int | None  # training images of each run; None: the whole training pool
    val_mean: float  # validation accuracy: it chose the winner
    val_std: float
    test_mean: float  # test accuracy: shown, never used to choose
    test_std: float
    candidates: tuple[str, ...]  # labels confirmed, in search order (best search value first)
    reference: Reference | None = (
        None  # iteration-3 confirmed with the same seeds, when the study has baselines
    )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "candidates": list(self.candidates)}  # asdict turns `reference` into a dict

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Winner:
        ref = data.get("reference")
        return cls(
            int(data["trial"]),
            str(data["label"]),
            int(data["n_params"]),
            int(data["seeds"]),
            int(data["epochs"]),
            data["subset"],
            float(data["val_mean"]),
            float(data["val_std"]),
            float(data["test_mean"]),
            float(data["test_std"]),
            tuple(data["candidates"]),
            None if ref is None else Reference(**ref),
        )

    def text(self) -> str:
        """'trial 12 (7,972 params) val 99.41 ± 0.03 % test 99.37 ± 0.04 % over 3 seeds'"""
        return (
            f"trial {self.trial} ({self.n_params:,} params) val {_pm(self.val_mean, self.val_std)} "
            f"test {_pm(self.test_mean, self.test_std)} over {self.seeds} seed{'s' if self.seeds > 1 else ''}"
        )

    def line(self) -> str:
        """The winner, then the reference confirmed on the same footing."""
        return self.text() + (f"; {self.reference.text()}" if self.reference else "")

    def settings(self) -> str:
        """How it was confirmed: seeds, epochs, training images."""
        return (
            f"{seed_range(self.seeds)}, {self.epochs} epochs on {self.subset or 'all'} training images, "
            "chosen by mean validation accuracy"
        )


def confirmed_winner(study: optuna.Study) -> Winner | None:
    """The stored winner, or None when the study has none (or an unreadable one)."""
    data = study.user_attrs.get(WINNER_ATTR)
    if not isinstance(data, dict):
        return None
    try:
        return Winner.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def store_winner(study: optuna.Study, winner: Winner) -> None:
    """Set the "winner" and "optuna_best" attributes and the dashboard notes; nothing is written when
    they are unchanged."""
    previous = confirmed_winner(study)
    optuna_best = optuna_best_entry(study, winner)
    if previous == winner and study.user_attrs.get(OPTUNA_BEST_ATTR) == optuna_best:
        return
    study.set_user_attr(WINNER_ATTR, winner.to_json())
    study.set_user_attr(OPTUNA_BEST_ATTR, optuna_best)
    _write_notes(study, winner, previous, optuna_best)


def optuna_best_trial(study: optuna.Study) -> FrozenTrial | None:
    """`study.best_trial`: the best value among complete, feasible trials; None when there is none."""
    try:
        return study.best_trial
    except ValueError:
        return None


def _fewest_seeds_stored(study: optuna.Study, label: str, winner: Winner) -> Confirmation | None:
    """The most seeds of `label` stored below the winner's (a model a race dropped), or None."""
    for seeds in range(winner.seeds - 1, 0, -1):
        found = load_if_stored(study, label, seeds, winner.epochs, winner.subset)
        if found is not None:
            return found
    return None


def why_not_optuna_best(study: optuna.Study, chosen: FrozenTrial, winner: Winner | None) -> str | None:
    """None when Optuna's best trial is `chosen`; else one line naming it and why `chosen` is taken."""
    best = optuna_best_trial(study)
    if best is None or best.number == chosen.number:
        return None
    value = f"{100 * best.value:.2f} %" if best.value is not None else "?"
    head = f"Optuna's best trial (study.best_trial) is trial {best.number} ({value})"
    head += f", not trial {chosen.number}"
    baseline = best.user_attrs.get("baseline")
    if baseline is not None:
        why = f"it is {baseline}, a reference design the search is compared with, never a search result"
    elif winner is not None and winner.trial == chosen.number:
        label = trial_label(best.number)
        confirmed = load_if_stored(study, label, winner.seeds, winner.epochs, winner.subset)
        raced = _fewest_seeds_stored(study, label, winner)  # dropped in an earlier round of a race
        if (confirmed is None or label not in winner.candidates) and raced is not None:
            why = (
                f"its single run scored higher, but retrained with {seed_range(raced.seeds)} it averaged "
                f"val {_pm(raced.val_mean, raced.val_std)} and the racing confirmation dropped it before "
                "the last round"
            )
        elif confirmed is None or label not in winner.candidates:
            why = (
                f"it was not among the confirmed candidates ({', '.join(winner.candidates)}); "
                "run the search again to confirm the current top trials"
            )
        else:
            why = (
                f"its single run scored higher, but retrained with {seed_range(winner.seeds)} it averaged "
                f"val {_pm(confirmed.val_mean, confirmed.val_std)} against the confirmed winner's "
                f"{_pm(winner.val_mean, winner.val_std)}"
            )
    elif best.value == chosen.value:
        why = "the two tie; the earlier trial is taken"
    else:
        why = "it is not a complete searched trial within the study's budget"
    return f"{head}: {why}"


def optuna_best_entry(study: optuna.Study, winner: Winner) -> dict[str, Any] | None:
    """The "optuna_best" attribute: Optuna's best trial next to the winner, and why they differ."""
    best = optuna_best_trial(study)
    trials = study.get_trials(deepcopy=False)
    if best is None or not 0 <= winner.trial < len(trials):
        return None
    why = why_not_optuna_best(study, trials[winner.trial], winner)
    return {"trial": best.number, "same_as_winner": why is None, "why": why}


def choose_winner(
    candidates: Sequence[tuple[FrozenTrial, Confirmation]],
    reference: Confirmation | None,
    *,
    epochs: int,
    subset: int | None,
) -> Winner:
    """The candidate with the best mean validation accuracy (the earlier one on a tie)."""
    trial, best = rank_by_confirmation(candidates, lambda pair: pair[1])[0]
    return Winner(
        trial.number,
        trial_label(trial.number),
        trial.user_attrs["n_params"],
        best.seeds,
        epochs,
        subset,
        best.val_mean,
        best.val_std,
        best.mean,
        best.std,
        tuple(trial_label(t.number) for t, _ in candidates),
        None
        if reference is None
        else Reference(REFERENCE, reference.val_mean, reference.val_std, reference.mean, reference.std),
    )


def _write_notes(
    study: optuna.Study, winner: Winner, previous: Winner | None, optuna_best: dict[str, Any] | None
) -> None:
    from optuna_dashboard import get_note, save_note

    ref = f" {winner.reference.text()} on the same seeds." if winner.reference else ""
    if optuna_best is not None and optuna_best.get("why"):
        ref += f" {optuna_best['why']}."
    save_note(
        study,
        _with_section(
            get_note(study),
            f"{NOTE_MARK}: trial {winner.trial}** ({winner.n_params:,} params): validation "
            f"{_pm(winner.val_mean, winner.val_std)}, test {_pm(winner.test_mean, winner.test_std)} "
            f"(mean ± std over {winner.seeds} seeds; {winner.settings()} among "
            f"{', '.join(winner.candidates)}).{ref}",
        ),
    )
    if previous is not None and previous.trial != winner.trial:
        old = _trial_handle(study, previous.trial)
        if old is not None:
            save_note(old, _with_section(get_note(old), None))
    trial = _trial_handle(study, winner.trial)
    if trial is not None:
        section = (
            f"{NOTE_MARK} of the study**: validation {_pm(winner.val_mean, winner.val_std)}, test "
            f"{_pm(winner.test_mean, winner.test_std)} (mean ± std over {winner.seeds} seeds; "
            f"{winner.settings()}).{ref}"
        )
        save_note(trial, _with_section(get_note(trial), section))


def _trial_handle(study: optuna.Study, number: int) -> optuna.Trial | None:
    """A handle for the dashboard's note functions; notes live in the study, so a finished trial works."""
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        return None
    return live_trial(study, trials[number])


def _with_section(body: str, section: str | None) -> str:
    """`body` without an earlier winner section, with `section` (if any) in front."""
    if body.startswith(NOTE_MARK):
        body = body.split(NOTE_END, 1)[1] if NOTE_END in body else ""
    if section is None:
        return body
    return section + NOTE_END + body if body else section
