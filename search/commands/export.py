"""`mnist-arch export`: one trial's config, trained weights, layer table, learning curve and standalone
programs (model.pt2, model.onnx)."""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_arch.config import CandidateConfig
from mnist_arch.errors import UsageError
from search.commands import SUMMARIES
from search.commands.args import add_study_args
from search.export.artifacts import WEIGHTS, artifact_dir_for, history_of, open_artifact_store, trial_artifact
from search.export.config_file import ExportedConfig
from search.export.export import check_out_dir, versions, write_export
from search.results.confirmations import load_if_stored
from search.results.table import top_trials
from search.results.winner import confirmed_winner, trial_label, why_not_optuna_best
from search.study.existing import open_existing_study


def trial_spec(text: str) -> str | int:
    if text == "best":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"must be 'best' or a trial number, got {text!r}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help=SUMMARIES["export"],
        description="Writes the trial's complete config (architecture and recipe, layers, input contract, "
        "parameter count, accuracies, dataset), its trained weights (a state_dict for "
        "torch.load(weights_only=True)), its layer table, and standalone programs that take raw pixels: "
        "model.pt2 (torch.export) and, with the onnx extra installed, model.onnx. "
        "`mnist-arch evaluate --weights DIR` reproduces the recorded test accuracy.",
    )
    study = parser.add_argument_group("study")
    add_study_args(study)
    study.add_argument("--artifacts", metavar="DIR", help="artifact folder (default: beside a SQLite file)")
    parser.add_argument(
        "--trial",
        type=trial_spec,
        default="best",
        metavar="best|N",
        help="best: the study's confirmed winner (best mean validation accuracy over seeds), else the "
        "best complete searched trial within the budget, unconfirmed (default); N: trial number N",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="export folder (new or empty)")
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_out_dir(out, args.force)
    study = open_existing_study(args.storage, args.study)
    trial = pick_trial(study, args.trial)
    folder = artifact_dir_for(args.storage, args.artifacts)
    weights = trial_artifact(study, trial, open_artifact_store(folder, create=False), WEIGHTS)
    if weights is None:
        raise UsageError(
            f"trial {trial.number} has no stored weights in {folder or 'an artifact folder'} "
            "(pass --artifacts DIR if the search used one); retrain its config with `mnist-arch train`"
        )
    exported = exported_config(study, trial)
    written = write_export(out, exported, weights, history_of(trial), force=args.force)
    print(
        f"exported trial {trial.number} ({exported.n_params:,} parameters, test "
        f"{100 * exported.accuracies['test_acc']:.2f}%) to {out}: {', '.join(written)}"
    )
    if args.trial == "best":
        winner = confirmed_winner(study)
        if winner is not None:
            print(f"confirmed winner: {winner.line()}")
        else:
            print(
                f"trial {trial.number} is unconfirmed: the best single search run, not retrained over seeds "
                "(`mnist-arch search` with --confirm-top K confirms the top trials)"
            )
        difference = why_not_optuna_best(study, trial, winner)
        if difference is not None:
            print(difference)
    return 0


def pick_trial(study: optuna.Study, spec: str | int) -> FrozenTrial:
    """--trial: "best" is the confirmed winner when the study has one, else its top searched trial."""
    if spec == "best":
        winner = confirmed_winner(study)
        if winner is not None:
            return _complete_trial(study, winner.trial)
        best = top_trials(study, 1)
        if not best:
            raise UsageError(
                f"study '{study.study_name}' has no complete searched trial within its budget; pass --trial N"
            )
        return best[0]
    return _complete_trial(study, spec)


def _complete_trial(study: optuna.Study, spec: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= spec < len(trials):
        raise UsageError(f"study '{study.study_name}' has no trial {spec} (trials 0..{len(trials) - 1})")
    trial = trials[spec]
    if trial.state != TrialState.COMPLETE:
        why = trial.user_attrs.get("rejected") or trial.user_attrs.get("fail_reason") or ""
        raise UsageError(
            f"trial {spec} is {trial.state.name.lower()}{f' ({why})' if why else ''}; "
            "only complete trials have trained weights"
        )
    return trial


def exported_config(study: optuna.Study, trial: FrozenTrial) -> ExportedConfig:
    attrs = trial.user_attrs
    config = CandidateConfig.from_dict(attrs["config"])
    budget = study.user_attrs.get("max_params")
    n_params = attrs["n_params"]
    return ExportedConfig(
        config,
        n_params,
        budget if budget is not None and n_params <= budget else None,  # a baseline may sit over it
        {"val_acc": attrs["val_acc"], "test_acc": attrs["test_acc"]},
        {
            "epochs": attrs["epochs_run"],
            "seed": attrs["seed"],
            "subset": study.user_attrs.get("subset"),
            "device": attrs.get("device", "cpu"),
            "source": f"study '{study.study_name}' trial {trial.number}",
            **versions(),
        },
        confirmation_entry(study, trial),
        study.user_attrs.get("dataset"),
    )


def confirmation_entry(study: optuna.Study, trial: FrozenTrial) -> dict | None:
    """The trial's seed confirmation on the winner's footing (seeds, epochs, data), when it has one."""
    winner = confirmed_winner(study)
    if winner is None:
        return None
    found = load_if_stored(study, trial_label(trial.number), winner.seeds, winner.epochs, winner.subset)
    if found is None:
        return None
    return {
        "seeds": winner.seeds,
        "epochs": winner.epochs,
        "subset": winner.subset,
        "val_mean": found.val_mean,
        "val_std": found.val_std,
        "test_mean": found.mean,
        "test_std": found.std,
        "winner": trial.number == winner.trial,
    }
