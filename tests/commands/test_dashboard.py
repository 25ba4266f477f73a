"""The dashboard on a real study, loaded in real headless Chromium; its bad-input exits."""

from __future__ import annotations

from tests.helpers import REPO  # isort: skip

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from search.results.table import top_trials
from search.study.dashboard import exposure_warning
from tests.results_study import assert_usage_error, run_cli, small_study  # noqa: F401

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Chromium is installed (.ci/run installs Debian's chromium)")
        pytest.skip("no Chromium installed (apt-get install chromium); CI always runs this test")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def dashboard(small_study):  # noqa: F811
    """`mnist-arch dashboard` as a user starts it; yields its base URL."""
    port = free_port()
    root = str(REPO)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    server = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "dashboard", "--storage", small_study.url, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                get_json(f"{base}/api/studies")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"dashboard did not start: {server.stdout.read()}") from None
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)


def render(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    command += [f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_dashboard_renders_the_study_and_its_trials_in_chromium(small_study, dashboard, tmp_path):  # noqa: F811
    browser()  # skip or fail before anything else
    study = small_study.load()
    best = top_trials(study, 1)[0]
    summaries = get_json(f"{dashboard}/api/studies")["study_summaries"]
    study_id = next(s["study_id"] for s in summaries if s["study_name"] == small_study.name)

    # What the page is built from: user attributes and, for the best trial, its artifacts.
    detail = get_json(f"{dashboard}/api/studies/{study_id}")
    trial = next(t for t in detail["trials"] if t["number"] == best.number)
    attrs = {a["key"] for a in trial["user_attrs"]}
    assert {"n_params", "val_acc", "test_acc", "receptive_field", "architecture", "val_curve"} <= attrs
    assert {"summary.txt", "learning_curve.png", "weights.pt"} <= {a["filename"] for a in trial["artifacts"]}

    # The page itself, rendered by a real browser.
    page = f"{dashboard}/dashboard/studies/{study_id}/trials?numbers={best.number}"
    for _ in range(3):  # the single-page app fills in after its API calls; retry a slow first load
        dom = render(page, tmp_path / "profile", "--dump-dom").stdout
        if small_study.name in dom and "summary.txt" in dom:
            break
    assert small_study.name in dom
    for t in study.get_trials(deepcopy=False):
        assert f"Trial {t.number}" in dom
    assert "summary.txt" in dom and "learning_curve.png" in dom and "receptive_field" in dom

    shot = tmp_path / "dashboard.png"
    render(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,1000")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_dashboard_refuses_a_port_in_use(small_study):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("dashboard", "--storage", small_study.url, "--port", str(port))
    assert_usage_error(result, f"port {port}", "in use")


def test_dashboard_refuses_a_missing_storage(tmp_path):
    missing = tmp_path / "none.db"
    assert_usage_error(run_cli("dashboard", "--storage", f"sqlite:///{missing}"), "does not exist")
    assert not missing.exists()


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("::1", False),
        ("localhost", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.0.2.7", True),
        ("2001:db8::1", True),
    ],
)
def test_only_a_loopback_host_goes_without_the_exposure_warning(host: str, warned: bool) -> None:
    warning = exposure_warning(host, 8123)
    assert (warning is not None) == warned
    if warning:
        assert "no login" in warning and "change and delete studies" in warning
        assert "ssh -L 8123:localhost:8123" in warning


def test_dashboard_on_all_interfaces_warns_on_stderr(small_study):  # noqa: F811
    port = free_port()
    root = str(REPO)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "search.cli", "dashboard", "--storage", small_study.url]
    server = subprocess.Popen(
        [*command, "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # serving on every interface, loopback included
            try:
                get_json(f"http://127.0.0.1:{port}/api/studies")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.5)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert err.startswith("warning: --host 0.0.0.0 lets other machines reach the dashboard"), err
    assert f"ssh -L {port}:localhost:{port}" in err and "anyone who can reach port" in err
