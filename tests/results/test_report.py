"""report: the table next to the three iterations, md + self-contained html, seed confirmation stored."""

from __future__ import annotations

import re
import statistics

import pytest

from mnist_arch.iterations import ITERATIONS
from search.results.confirmations import attr_key
from search.results.table import top_trials
from tests.results_study import assert_usage_error, mnist_dir, run_cli, small_study  # noqa: F401

PLOTS = ("accuracy_vs_params.png", "best_over_trials.png", "learning_curves.png", "importances.png")


def test_report_writes_markdown_html_and_plots(small_study, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    result = run_cli("report", "--storage", small_study.url, "--study", small_study.name, "--out", str(out))
    assert result.returncode == 0, result.stderr
    study = small_study.load()
    best = top_trials(study, 1)[0]
    md = (out / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| model | params | RF | architecture | val acc | test acc | published")
    assert rows[1].startswith(f"| trial {best.number} | {best.user_attrs['n_params']:,} |")
    for it in ITERATIONS:
        row = next(r for r in rows if r.startswith(f"| {it.name} |"))
        assert f"{100 * it.published_test_acc:.2f}%" in row
    for plot in PLOTS:
        assert (out / "plots" / plot).read_bytes().startswith(b"\x89PNG"), plot
        assert f"(plots/{plot})" in md
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(PLOTS)
    assert "plots/" not in html  # self-contained: no file references
    assert "iteration-3" in result.stdout  # the table in the terminal
    assert "- confirmed winner: none; the top row is the single best search run" in md


def test_confirm_seeds_trains_once_and_is_stored_in_the_study(small_study, tmp_path):  # noqa: F811
    args = ["report", "--storage", small_study.url, "--study", small_study.name, "--top", "1"]
    args += [
        "--confirm-seeds",
        "2",
        "--epochs",
        "1",
        "--subset",
        "300",
        "--device",
        "cpu",
        "--data",
        mnist_dir(),
    ]
    first = run_cli(*args, "--out", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    assert "confirming 4 models with 2 seeds: 8 runs" in first.stdout

    study = small_study.load()
    labels = [f"trial-{top_trials(study, 1)[0].number}"] + [it.name for it in ITERATIONS]
    means = {}
    for label in labels:
        runs = study.user_attrs[attr_key(label, 1, 300)]["runs"]
        assert sorted(runs) == ["0", "1"] and all(0 <= r["test_acc"] <= 1 for r in runs.values())
        means[label] = (
            statistics.fmean(r["val_acc"] for r in runs.values()),
            statistics.fmean(r["test_acc"] for r in runs.values()),
        )

    md = (tmp_path / "first" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")][1:]  # after the header
    assert "| val mean ± std (2 seeds) | test mean ± std (2 seeds) | test min |" in md
    shown = [re.findall(r"\| ([\d.]+) ± [\d.]+% ", row) for row in rows]
    val_shown = [float(cells[0]) for cells in shown if cells]
    assert len(val_shown) == 4 and val_shown == sorted(val_shown, reverse=True)  # ranked by the val mean
    for label, (val_mean, test_mean) in means.items():
        name = label.replace("-", " ") if label.startswith("trial") else label
        row = next(row for row in rows if row.startswith(f"| {name} |"))
        assert f"| {100 * val_mean:.2f} ± " in row and f"| {100 * test_mean:.2f} ± " in row
    order = [row.split(" | ")[0][2:] for row in rows if re.search(" ± ", row)]
    by_val = sorted(means, key=lambda label: means[label][0], reverse=True)
    assert order == [label.replace("-", " ") if label.startswith("trial") else label for label in by_val]

    second = run_cli(*args, "--out", str(tmp_path / "second"))
    assert second.returncode == 0, second.stderr
    assert "confirming" not in second.stdout  # nothing retrained
    assert (tmp_path / "second" / "report.md").read_text() == md


def test_report_refuses_a_missing_study_or_storage(small_study, tmp_path):  # noqa: F811
    missing = tmp_path / "missing.db"
    out = tmp_path / "out"
    assert_usage_error(
        run_cli("report", "--storage", f"sqlite:///{missing}", "--out", str(out)), "does not exist"
    )
    no_study = run_cli("report", "--storage", small_study.url, "--study", "absent", "--out", str(out))
    assert_usage_error(no_study, "no study 'absent'", small_study.name)
    assert not missing.exists() and not out.exists()
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert_usage_error(
        run_cli("report", "--storage", small_study.url, "--study", small_study.name, "--out", str(a_file)),
        "is a file",
    )


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_report_refuses_bad_seed_counts(bad):
    assert_usage_error(run_cli("report", "--confirm-seeds", bad), "--confirm-seeds")
