"""How large the confirmation is: given on the command line, or sized to the search it follows.

A confirmation retrains models at full length, so on a short search the usual top 5 x 2 seeds, then the
best 3 x 4 (20 runs with iteration 3) would cost more than the search. Unless --confirm-top, --confirm-seeds
or --confirm-rounds is given, the confirmation is the largest of CONFIRM_SIZES whose runs take at most
CONFIRM_SHARE of the search's model-epochs: planned before the search from --trials x --epochs (an upper
bound), and sized again afterwards from the model-epochs the study trained (pruning and --timeout make that
fewer), never larger than announced.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from search.run.settings import SearchSettings
from search.study.trials import is_trained

CONFIRM_SHARE = 0.5  # of the search's model-epochs


def race_plan(models: int, seeds: int, rounds: int) -> list[tuple[int, int]]:
    """(models, seeds) of each round of successive halving: `models` with `seeds`, then each round the
    better half (rounded up) with twice the seeds; a round of two models is the last (one more round
    would only confirm a winner already chosen)."""
    plan = [(models, seeds)]
    while len(plan) < rounds and plan[-1][0] > 2:
        kept, seeds_so_far = plan[-1]
        plan.append(((kept + 1) // 2, 2 * seeds_so_far))
    return plan


def race_cost(plan: list[tuple[int, int]]) -> int:
    """Training runs a race plan costs (seeds already run are reused)."""
    cost, previous = 0, 0
    for models, seeds in plan:
        cost += models * (seeds - previous)
        previous = seeds
    return cost


@dataclass(frozen=True)
class ConfirmSize:
    """Searched models confirmed (`top`), seeds of the first round, rounds of successive halving."""

    top: int
    seeds: int
    rounds: int

    def runs(self, reference: bool) -> int:
        """Training runs, iteration 3's (with the last round's seeds) included when `reference`."""
        plan = race_plan(self.top, self.seeds, self.rounds)
        return race_cost(plan) + (plan[-1][1] if reference else 0)

    def text(self) -> str:
        """E.g. 'top 5 x 2 seeds, then the best 3 x 4'."""
        plan = race_plan(self.top, self.seeds, self.rounds)
        first, *later = plan
        parts = [f"top {first[0]} x {first[1]} seed{'s' if first[1] != 1 else ''}"]
        parts += [f"the best {models} x {seeds}" for models, seeds in later]
        return ", then ".join(parts)


# Largest first. The first is a full search's default
# (BENCHMARKS.md, "Confirmation: plain against racing");
# the smaller ones keep two seeds (a mean and a spread, the winner's and iteration 3's) for as long as the
# budget allows, down to the best model alone.
CONFIRM_SIZES = (
    ConfirmSize(5, 2, 2),
    ConfirmSize(4, 2, 2),
    ConfirmSize(3, 2, 1),
    ConfirmSize(2, 2, 1),
    ConfirmSize(1, 2, 1),
    ConfirmSize(1, 1, 1),
)
GIVEN_DEFAULT = CONFIRM_SIZES[0]  # fills what the command line leaves out when it gives any of the three


def size_for(model_epochs: float, epochs: int, reference: bool) -> ConfirmSize:
    """The largest size whose runs of `epochs` fit CONFIRM_SHARE of `model_epochs`; the smallest if none."""
    for size in CONFIRM_SIZES:
        if size.runs(reference) * epochs <= CONFIRM_SHARE * model_epochs:
            return size
    return CONFIRM_SIZES[-1]


def is_automatic(settings: SearchSettings) -> bool:
    return (settings.confirm_top, settings.confirm_seeds, settings.confirm_rounds) == (None, None, None)


def planned_size(settings: SearchSettings, reference: bool) -> ConfirmSize | None:
    """The confirmation announced before the search; None when --confirm-top 0 turns it off."""
    if settings.confirm_top == 0:
        return None
    if not is_automatic(settings):
        return ConfirmSize(
            settings.confirm_top or GIVEN_DEFAULT.top,
            settings.confirm_seeds or GIVEN_DEFAULT.seeds,
            settings.confirm_rounds or GIVEN_DEFAULT.rounds,
        )
    return size_for(settings.trials * settings.epochs, settings.epochs, reference)


def final_size(
    settings: SearchSettings, planned: ConfirmSize | None, study: optuna.Study, reference: bool
) -> ConfirmSize | None:
    """After the search: the planned size, or, when automatic, what the model-epochs trained allow."""
    if planned is None or not is_automatic(settings):
        return planned
    fitted = size_for(trained_model_epochs(study), settings.epochs, reference)
    return fitted if fitted.runs(reference) < planned.runs(reference) else planned


def trained_model_epochs(study: optuna.Study) -> int:
    """Epochs trained by the study's trained trials (complete and pruned), baselines included."""
    trials = study.get_trials(deepcopy=False)
    return sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials if is_trained(t))


def cost_text(size: ConfirmSize, epochs: int, reference: bool, search_model_epochs: float) -> str:
    """E.g. 'top 3 x 2 seeds with iteration-3: 8 runs of 4 epochs = 32 model-epochs (40 % of the
    search's 80)'."""
    runs = size.runs(reference)
    share = f" ({100 * runs * epochs / search_model_epochs:.0f} % of the search's {search_model_epochs:,.0f})"
    return (
        f"{size.text()}{' with iteration-3' if reference else ''}: {runs} run{'s' if runs != 1 else ''} of "
        f"{epochs} epoch{'s' if epochs != 1 else ''} = {runs * epochs:,} model-epochs"
        + (share if search_model_epochs > 0 else "")
    )
