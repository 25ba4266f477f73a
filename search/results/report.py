"""The results report: the top searched models next to the three iterations, plots, markdown and HTML."""

from __future__ import annotations

import base64
import html
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from rich.markup import escape
from rich.table import Table

from mnist_arch.config import CandidateConfig
from mnist_arch.dataset import MNIST, name_of
from mnist_arch.dataset import describe as describe_data
from mnist_arch.model import count_params, receptive_field
from mnist_arch.notation import describe
from mnist_arch.references import REFERENCE_NAMES, REFERENCES, Reference, get_reference
from search.results.confirmations import Confirmation, ConfirmJob
from search.results.plots import (
    Curve,
    Level,
    Point,
    WinnerMark,
    accuracy_vs_params_png,
    best_over_trials_png,
    importances_png,
    learning_curves_png,
)
from search.results.speed import SPEED_NOTE, throughput
from search.results.table import WINNER_MARK, baseline_trials, shown_trials, winner_trial
from search.results.tables import ARCH_LEGEND, arch_notation, compact_table, mean_std, percent
from search.results.winner import Winner, confirmed_winner, trial_label
from search.study.trials import is_trained


@dataclass
class ReportRow:
    name: str  # "trial 12" or the iteration's name
    label: str  # key of its confirmation runs
    config: CandidateConfig
    trial: FrozenTrial | None  # None for an iteration the study never trained
    published: float | None = None
    confirmation: Confirmation | None = None
    winner: bool = False  # the study's confirmed winner

    @property
    def attrs(self) -> dict:
        return self.trial.user_attrs if self.trial is not None else {}

    @property
    def job(self) -> ConfirmJob:
        return ConfirmJob(self.label, self.config)


@dataclass(frozen=True)
class Figure:
    file: str
    title: str
    png: bytes | None
    note: str = ""  # why a figure is missing


def report_rows(study: optuna.Study, k: int) -> list[ReportRow]:
    """The shown searched trials (search.results.table.shown_trials), then the three iterations, trained
    in the study or not, and the other references the study trained."""
    found = winner_trial(study, confirmed_winner(study))
    rows = [
        ReportRow(
            f"trial {t.number}",
            trial_label(t.number),
            CandidateConfig.from_dict(t.user_attrs["config"]),
            t,
            winner=found is not None and t.number == found.number,
        )
        for t in shown_trials(study, k)
    ]
    trained = {t.user_attrs["baseline"]: t for t in baseline_trials(study)}
    on_mnist = name_of(study.user_attrs.get("dataset")) == MNIST  # the published figures are MNIST's
    for reference in REFERENCES:  # the iterations always; the other references where trained
        if reference.is_iteration or reference.name in trained:
            published = published_figure(reference) if on_mnist else None
            rows.append(
                ReportRow(
                    reference.name, reference.name, reference.config, trained.get(reference.name), published
                )
            )
    return rows


def published_figure(reference: Reference) -> float:
    """The published final-epoch test accuracy where the source gives it, else the best epoch's."""
    return reference.published_final if reference.published_final is not None else reference.published_best


def reference_notes(rows: list[ReportRow]) -> list[str]:
    """One line per public reference in the table: its source, published figure and what is not copied."""
    notes = []
    for row in rows:
        if row.name in REFERENCE_NAMES and not get_reference(row.name).is_iteration:
            reference = get_reference(row.name)
            notes.append(
                f"{reference.name}: {reference.source}; published {reference.published_note}; "
                f"not copied exactly: {'; '.join(reference.differences)}"
            )
    return notes


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def table_cells(rows: list[ReportRow]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table, shared by the terminal, markdown and HTML."""
    confirmed = any(r.confirmation for r in rows)
    header = ["model", "params", "RF", "architecture", "val acc", "test acc", "published", "wall s/epoch"]
    if confirmed:
        n = max(r.confirmation.seeds for r in rows if r.confirmation)
        header += [f"val mean ± std ({n} seeds)", f"test mean ± std ({n} seeds)", "test min"]
    cells = []
    for row in rows:
        arch = row.config.arch
        spe = row.attrs.get("sec_per_epoch")
        line = [
            f"{row.name} {WINNER_MARK}" if row.winner else row.name,
            f"{count_params(arch):,}",
            str(receptive_field(arch)),
            describe(arch),
            _pct(row.attrs.get("val_acc")),
            _pct(row.attrs.get("test_acc")),
            _pct(row.published),
            "-" if spe is None else f"{spe:.2f}",
        ]
        if confirmed:
            c = row.confirmation
            line += [c.val_text(), c.text(), _pct(c.min)] if c else ["-", "-", "-"]
        cells.append(line)
    return header, cells


def compact_cells(rows: list[ReportRow]) -> tuple[list[str], list[list[str]]]:
    """The main table in 80 columns: short architecture, percent without the sign, the seed means in place
    of RF and the single run's test accuracy when models are confirmed (and of its validation accuracy
    too when all of them are)."""
    confirmed = any(r.confirmation for r in rows)
    single_val = not all(r.confirmation for r in rows)
    published = any(r.published is not None for r in rows)
    header = ["model", "params", *([] if confirmed else ["RF"]), "arch", *(["val %"] if single_val else [])]
    if confirmed:
        n = max(r.confirmation.seeds for r in rows if r.confirmation)
        header += [f"val %\n{n} seeds", f"test %\n{n} seeds"]
    else:
        header.append("test %")
    if published:
        header.append("published\ntest %")
    cells = []
    for row in rows:
        arch = row.config.arch
        line = [f"{row.name} {WINNER_MARK}" if row.winner else row.name, f"{count_params(arch):,}"]
        line += [] if confirmed else [str(receptive_field(arch))]
        line += [arch_notation(arch)] + ([percent(row.attrs.get("val_acc"))] if single_val else [])
        if confirmed:
            c = row.confirmation
            line += [mean_std(c.val_mean, c.val_std), mean_std(c.mean, c.std)] if c else ["-", "-"]
        else:
            line.append(percent(row.attrs.get("test_acc")))
        if published:
            line.append(percent(row.published))
        cells.append(line)
    return header, cells


def rich_table(study: optuna.Study, rows: list[ReportRow], *, wide: bool = False) -> Table:
    """The terminal's table: 80 columns by default, every column of the markdown with `wide`."""
    header, cells = table_cells(rows) if wide else compact_cells(rows)
    left = ("model", "architecture", "arch")
    table = compact_table(f"study '{escape(study.study_name)}'", header, cells, left=left, fit=not wide)
    table.caption = f"wall s/epoch: {SPEED_NOTE}" if wide else f"{ARCH_LEGEND}; --wide for every column"
    return table


def plot_points(study: optuna.Study, metric: str) -> list[Point]:
    """Every trained trial: complete ones at their final metric, pruned ones at their last reported value."""
    points = []
    for t in study.get_trials(deepcopy=False):
        if not is_trained(t) or "n_params" not in t.user_attrs:
            continue
        value = _plotted_value(t, metric)
        if value is not None:
            baseline = t.user_attrs.get("baseline")
            points.append(
                Point(t.user_attrs["n_params"], value, baseline, t.state != TrialState.COMPLETE, t.number)
            )
    return points


def figures(study: optuna.Study, rows: list[ReportRow]) -> list[Figure]:
    metric = {"val": "val_acc", "test": "test_acc"}.get(study.user_attrs.get("objective", "val"), "val_acc")
    points = plot_points(study, metric)
    references = [
        Level(t.user_attrs["baseline"], t.user_attrs[metric])
        for t in baseline_trials(study)
        if t.user_attrs["baseline"] == "iteration-3" and metric in t.user_attrs
    ]
    winner = WinnerMark.from_attr(study.user_attrs.get("winner"), metric)
    curves = [Curve(r.name, r.attrs.get("val_curve", [])) for r in rows if r.attrs.get("val_curve")]
    out = [
        Figure(
            "accuracy_vs_params.png",
            "Accuracy vs parameters",
            accuracy_vs_params_png(points, study.user_attrs.get("max_params"), metric, winner),
        ),
        Figure(
            "best_over_trials.png",
            "Best value over trials",
            best_over_trials_png(points, metric, references, winner)
            if any(p.label is None for p in points)
            else None,
            "no searched trial yet",
        ),
        Figure(
            "learning_curves.png",
            "Learning curves (validation)",
            learning_curves_png(curves, "val_acc") if curves else None,
            "no recorded curves",
        ),
    ]
    importances, why = _importances(study)
    out.append(
        Figure(
            "importances.png",
            "Hyperparameter importances",
            importances_png(importances) if importances else None,
            why,
        )
    )
    return out


def _plotted_value(trial: FrozenTrial, metric: str) -> float | None:
    """A complete trial's final metric; a pruned one's last reported value."""
    if trial.state != TrialState.COMPLETE and trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return trial.user_attrs.get(metric)


def _importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    # PED-ANOVA needs only numpy (fANOVA would pull in scikit-learn).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return optuna.importance.get_param_importances(study, evaluator=evaluator), ""
    except (ValueError, RuntimeError) as error:
        return {}, f"not computable yet ({str(error).splitlines()[0]})"


def _settings_lines(study: optuna.Study, storage: str, confirm: dict | None) -> list[str]:
    attrs = study.user_attrs
    trials = study.get_trials(deepcopy=False)
    trained = sum(is_trained(t) for t in trials)
    rejected = sum("rejected" in t.user_attrs for t in trials)
    lines = [
        f"study `{study.study_name}` in `{storage}`: {trained} trained trials, "
        f"{rejected} over-budget draws rejected",
        f"objective: {attrs.get('objective', 'val')} accuracy; "
        f"budget {attrs.get('max_params', '-')} parameters; {attrs.get('epochs', '-')} epochs per trial "
        f"on {attrs.get('subset') or 'all'} training images",
        f"data: {describe_data(attrs.get('dataset'))}"
        + ("" if name_of(attrs.get("dataset")) == MNIST else "; published figures are MNIST's, not shown"),
        "val acc / test acc: final epoch of the search run; published: one run's test accuracy, at the "
        "final epoch where the source gives it (the public references), else the best (the iterations)",
    ]
    lines.append(winner_line(confirmed_winner(study)))
    if confirm and confirm.get("from_search"):
        lines.append(
            f"seed columns: the search's confirmation runs (seeds 0..{confirm['seeds'] - 1}, "
            f"{confirm['epochs']} epochs on {confirm['subset'] or 'all'} training images); "
            "a dash where a model was not confirmed"
        )
    elif confirm:
        lines.append(
            f"confirmation: every model retrained from scratch with seeds 0..{confirm['seeds'] - 1}, "
            f"{confirm['epochs']} epochs on {confirm['subset'] or 'all'} training images, "
            f"{confirm['device']}; "
            "final-epoch validation and test accuracy, table ranked by the mean validation accuracy"
        )
    speed = throughput(trials)
    if speed is not None:
        lines.append(f"{speed.line()}; wall s/epoch: {SPEED_NOTE}")
    lines.append(
        f"machine: {platform.machine()} {platform.system()}, torch {torch.__version__}, "
        f"optuna {optuna.__version__}"
    )
    return lines


def winner_line(winner: Winner | None) -> str:
    """What the report says about the study's confirmed winner (or its absence)."""
    if winner is None:
        return (
            "confirmed winner: none; the top row is the single best search run, not confirmed over seeds "
            "(`mnist-arch search` with --confirm-top K confirms it)"
        )
    return (
        f"confirmed winner {WINNER_MARK}: {winner.line()} (mean ± std; {winner.settings()} among "
        f"{', '.join(winner.candidates)})"
    )


def write_report(
    out: Path,
    study: optuna.Study,
    storage: str,
    rows: list[ReportRow],
    figs: list[Figure],
    confirm: dict | None,
) -> list[Path]:
    """report.md with plots/*.png beside it, and report.html with the same plots embedded."""
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for fig in figs:
        if fig.png:
            (out / "plots" / fig.file).write_bytes(fig.png)
    header, cells = table_cells(rows)
    settings = _settings_lines(study, storage, confirm) + reference_notes(rows)
    md = [f"# mnist-arch results: study {study.study_name}", ""]
    md += [f"- {line}" for line in settings] + [""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells]
    for fig in figs:
        md += ["", f"## {fig.title}", ""]
        md.append(f"![{fig.title}](plots/{fig.file})" if fig.png else f"_{fig.note}_")
    (out / "report.md").write_text("\n".join(md) + "\n")
    (out / "report.html").write_text(_html(study, settings, header, cells, figs))
    return [out / "report.md", out / "report.html"]


def _html(
    study: optuna.Study, settings: list[str], header: list[str], cells: list[list[str]], figs: list[Figure]
) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mnist-arch results: {esc(study.study_name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:nth-child(1),td:nth-child(4){text-align:left}img{max-width:100%}</style></head><body>",
        f"<h1>mnist-arch results: study {esc(study.study_name)}</h1>",
        "<ul>" + "".join(f"<li>{esc(line.replace('`', ''))}</li>" for line in settings) + "</ul>",
        "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>",
    ]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in line) + "</tr>" for line in cells]
    parts.append("</table>")
    for fig in figs:
        parts.append(f"<h2>{esc(fig.title)}</h2>")
        if fig.png:
            data = base64.b64encode(fig.png).decode()
            parts.append(f'<img alt="{esc(fig.title)}" src="data:image/png;base64,{data}">')
        else:
            parts.append(f"<p><em>{esc(fig.note)}</em></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
