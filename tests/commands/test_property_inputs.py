"""Whatever a user types, the CLI ends in exit 0, or in exit 2 with one line on stderr and no traceback,
and a refused command leaves the folder it ran in exactly as it was (no study, no new file).

The CLI runs in this process (`search.cli.main`) for speed. Valid input stays cheap: one trial of one
epoch on a small slice of MNIST, usually refused anyway by the study already in the folder when a setting
differs from the one it was created with.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.cli import main
from space.spec import RULES
from tests.helpers import run_subprocess
from tests.search_procs import SMALL_SPACE

pytestmark = pytest.mark.slow  # -m 'not slow' leaves it out of the quick loop

# The study in the folder was made with exactly these settings, so a run that repeats them resumes a
# study that already holds its one trial and trains nothing.
BASE = (
    "--device",
    "cpu",
    "--max-params",
    "8000",
    "--subset",
    "200",
    "--epochs",
    "1",
    "--trials",
    "1",
    "--confirm-top",
    "0",
)
BASE += ("--no-baselines", "--pruner", "none")

# Characters a shell can pass (no NUL; surrogates excluded by Hypothesis' text()).
TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=24)
HOSTILE = st.sampled_from(
    [
        "-1", "0", "1", "2", "-0", "nan", "NaN", "inf", "-inf", "1e309", "1e-309", "0x10", "1_000", " 1",
        "4294967295", "4294967296", "18446744073709551616", "9" * 30, "", " ", "\n", "x\ny", "\t",
        "[/red]", "[bold]oops", "\\", "☃", "٣", "𝟙", "../", "/", ".", "/dev/null", "-", "--", "auto",
    ]
)  # fmt: skip
NUMBERS = st.one_of(st.integers(-(2**70), 2**70).map(str), st.floats().map(str))
ANY_TEXT = st.one_of(HOSTILE, TEXT, NUMBERS)
PATHS = st.one_of(
    st.sampled_from(["a-file", "a-file/below", "a-folder", "missing/deeper", "[/red]", "", ".", "/dev/null"]),
    TEXT.filter(lambda t: not t.startswith("/")),
)


def _int_over(text: str, cap: int) -> bool:
    try:
        return int(text) > cap
    except ValueError:
        return False


def capped(cap: int) -> st.SearchStrategy[str]:
    """Hostile values for a flag whose large valid values cost minutes: those are left out."""
    return ANY_TEXT.filter(lambda t: not _int_over(t, cap))


# Values each flag accepts and that stay cheap; half of the draws take one, so that the checks behind the
# parser (space, devices, data, paths, storage, the study's settings) are reached too.
DATA = "<the small MNIST>"
VALID: dict[str, list[str]] = {
    "--trials": ["1"],
    "--epochs": ["1", "2"],
    "--subset": ["200", "150", "100000"],
    "--max-params": ["8000", "6000", "20000"],
    "--seed": ["0", "7", "4294967295"],
    "--timeout": ["0.001", "1e9"],
    "--workers": ["1"],
    "--concurrency": ["auto", "1", "2"],
    "--confirm-top": ["0"],
    "--confirm-seeds": ["1", "3"],
    "--study": ["mnist-arch", "[/red]", "other"],
    "--storage": ["sqlite:///mnist_arch.db", "sqlite:///other.db", "sqlite:///a-folder/x.db"],
    "--artifacts": ["artifacts", "a-folder"],
    "--space": ["space.toml"],
    "--data": [DATA],
    "--device": ["cpu", "auto", "cuda", "cpu,cpu", "cuda:0,cuda:1"],
    "--engine": ["separate", "fused", "auto"],
    "--pruner": ["rungs", "median", "hyperband", "none"],
    "--objective": ["val", "test"],
}
HOSTILE_FOR: dict[str, st.SearchStrategy[str]] = {
    "--trials": capped(1),
    "--epochs": capped(2),
    # A larger budget fills the space's widest (slow) models; one barely above the smallest model
    # rejects hundreds of draws per trained trial (valid, but slow).
    "--max-params": capped(20000).filter(lambda t: not _int_over(t, 1155) or _int_over(t, 2999)),
    "--workers": ANY_TEXT.filter(lambda t: not (_int_over(t, 1) and not _int_over(t, 64))),
    "--concurrency": capped(2),
    "--confirm-top": capped(0),
    "--storage": st.one_of(ANY_TEXT, PATHS.map(lambda p: f"sqlite:///{p}")),
    "--artifacts": PATHS,
    "--space": PATHS,
    "--data": PATHS,
}
SEARCH_FLAGS = {
    name: st.one_of(st.sampled_from(valid), HOSTILE_FOR.get(name, ANY_TEXT)) for name, valid in VALID.items()
}

# TOML values, including what TOML allows and a space must refuse: nan, inf, wrong types, wrong shapes.
TOML_SCALARS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "+nan", "1e309", "0", "-1", "true", "false", '"8"', "1979-05-27"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
TOML_VALUES = st.one_of(
    TOML_SCALARS,
    st.builds(lambda lo, hi: f"{{low = {lo}, high = {hi}}}", TOML_SCALARS, TOML_SCALARS),
    st.builds(
        lambda lo, hi, lg: f"{{low = {lo}, high = {hi}, log = {lg}}}",
        TOML_SCALARS,
        TOML_SCALARS,
        TOML_SCALARS,
    ),
    st.lists(TOML_SCALARS, max_size=4).map(lambda v: f"{{choices = [{', '.join(v)}]}}"),
    st.sampled_from(["{choices = []}", "{low = 1}", "{}", "[1, 2]", "{low = 1, high = 2, step = 1}"]),
)
KEYS = [(rule.group, name) for name, rule in RULES.items()]
KEYS += [("budget", "max_params"), ("budget", "epochs"), ("architecture", "per_layer_widths")]
KEYS += [("architecture", "budget_fill"), ("optimizer", "nesterov"), ("nonsense", "lr")]
TOML_LINES = st.tuples(st.sampled_from(KEYS), TOML_VALUES).map(lambda kv: (kv[0][0], f"{kv[0][1]} = {kv[1]}"))


def _toml(lines: list[tuple[str, str]]) -> str:
    groups: dict[str, list[str]] = {}
    for group, line in lines:
        groups.setdefault(group, []).append(line)
    return "".join(f"[{group}]\n" + "\n".join(body) + "\n" for group, body in groups.items())


VALID_SPACES = [
    "",
    SMALL_SPACE,
    "[architecture]\nconvs_after_pool = 6\npool_before_gap = {choices = [false, true]}\n",
    "[architecture]\nper_layer_widths = true\nbudget_fill = false\n"
    "[optimizer]\nlr = {low = 0.01, high = 0.1, log = true}\n",
    "[budget]\nmax_params = 1000000000\nepochs = 1000000000\n[schedule]\nlr_decay_at = 1.0\n",
]
SPACE_FILES = st.one_of(
    st.sampled_from(VALID_SPACES).map(str.encode),
    st.lists(TOML_LINES, max_size=5).map(lambda lines: _toml(lines).encode()),
    TEXT.map(str.encode),
    st.binary(max_size=40),
    st.integers(1, 6).map(lambda n: ("lr = " + "[" * 10**n + "]" * 10**n).encode()),
)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.sampled_from([1e308 * 10, -1e308 * 10, 10**400, -(10**400), 0.04, 7.0, 128, 10]),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
)
ARCH_KEYS = ["block1", "transition", "block2", "pool_before_gap", "dropout", "last_dropout", "num_classes"]
TRAIN_KEYS = ["lr", "momentum", "batch_size", "lr_step", "lr_gamma", "lr_decay_start", "rotation"]
CONFIGS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "arch": st.dictionaries(st.sampled_from([*ARCH_KEYS, "width"]), JSON_VALUES, max_size=3),
            "train": st.dictionaries(st.sampled_from([*TRAIN_KEYS, "nesterov"]), JSON_VALUES, max_size=3),
            "schema_version": JSON_SCALARS,
            "n_params": JSON_SCALARS,
            "max_params": JSON_SCALARS,
        },
    ).map(lambda d: json.dumps(d, allow_nan=True).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=40),
    st.integers(1, 6).map(lambda n: ("[" * 10**n + "]" * 10**n).encode()),
)


@pytest.fixture(scope="module")
def studied(tmp_path_factory, data) -> Path:
    """A SQLite file holding one study with one trained trial, made by a real search with BASE."""
    folder = tmp_path_factory.mktemp("studied")
    result = run_subprocess("search", *BASE, "--data", str(data), cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "mnist_arch.db"


@contextlib.contextmanager
def scratch_folder(db: Path | None) -> Iterator[Path]:
    """A fresh folder with the study file (optional), an odd file and folder; the CLI runs in it."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if db is not None:
            shutil.copyfile(db, folder / "mnist_arch.db")
        (folder / "a-file").write_text("x")
        (folder / "a-folder").mkdir()
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(previous)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


def run_main(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, err.getvalue()


def check_outcome(folder: Path, before: dict[str, bytes | None], argv: list[str]) -> None:
    # The SQLite file may sit in WAL mode: a reader's transient -wal/-shm files are not the command's.
    before = {k: v for k, v in before.items() if not k.endswith(("-wal", "-shm"))}
    code, err = run_main(argv)
    assert code in (0, 2), f"{argv!r} exited {code}:\n{err}"
    if code == 2:
        assert "Traceback" not in err, f"{argv!r}:\n{err}"
        assert len(err.splitlines()) == 1 and err.endswith("\n"), f"{argv!r}:\n{err!r}"
        after = {k: v for k, v in snapshot(folder).items() if not k.endswith(("-wal", "-shm"))}
        assert after == before, f"{argv!r} was refused but changed the folder"


# No example database: a failure prints its falsifying example, and the checkout stays clean.
QUICK = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@settings(QUICK, max_examples=40)
@given(
    flags=st.lists(st.sampled_from(sorted(SEARCH_FLAGS)), min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.tuples(*(st.tuples(st.just(n), SEARCH_FLAGS[n]) for n in names))
    ),
    space=SPACE_FILES,
    with_study=st.sampled_from([True, True, True, False]),  # a fresh folder trains a trial: seconds
)
def test_search_with_any_flags(studied, data, flags, space, with_study) -> None:
    with scratch_folder(studied if with_study else None) as folder:
        (folder / "space.toml").write_bytes(space)
        argv = ["search", *BASE, "--data", str(data)]
        for name, value in flags:
            value = str(data) if value == DATA else value
            argv += [f"{name}={value}"] if value.startswith("-") else [name, value]
        check_outcome(folder, snapshot(folder), argv)


@settings(QUICK, max_examples=60)
@given(
    space=SPACE_FILES, max_params=st.one_of(st.none(), capped(10**9)), epochs=st.one_of(st.none(), ANY_TEXT)
)
def test_space_command_with_any_space_file(space, max_params, epochs) -> None:
    with scratch_folder(None) as folder:
        (folder / "space.toml").write_bytes(space)
        argv = ["space", "--space", "space.toml"]
        argv += [] if max_params is None else [f"--max-params={max_params}"]
        argv += [] if epochs is None else [f"--epochs={epochs}"]
        check_outcome(folder, snapshot(folder), argv)


@settings(QUICK, max_examples=50)
@given(config=CONFIGS, out=PATHS, force=st.booleans())
def test_train_with_any_config_file(config, out, force) -> None:
    """Data that is not there stops a valid config after every other check: nothing trains."""
    with scratch_folder(None) as folder:
        (folder / "config.json").write_bytes(config)
        argv = ["train", "--config", "config.json", "--device", "cpu", "--data", "no-data", "--out", out]
        argv += ["--force"] if force else []
        check_outcome(folder, snapshot(folder), argv)


# ---- files that are not whole regular files, for every reader ---------------------------------------------

READERS = st.sampled_from(["idx-gz", "idx-plain", "space", "config"])
FILE_KINDS = st.sampled_from(["fifo", "device", "oversized", "truncated", "empty"])


def _bad_file(path: Path, kind: str, whole: bytes, cut: int, oversized: bytes) -> None:
    """Replace `path` (whose good content is `whole`) with a file of `kind`."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "oversized":
        path.write_bytes(oversized)
    elif kind == "truncated":
        path.write_bytes(whole[: max(0, len(whole) - cut)])
    else:
        path.write_bytes(b"")


@settings(QUICK, max_examples=40)
@given(reader=READERS, kind=FILE_KINDS, cut=st.integers(1, 5000))
def test_every_reader_refuses_files_that_are_not_whole_regular_files(data, reader, kind, cut) -> None:
    """A FIFO or a device is refused at once (never read: one would block, the other never ends), an
    oversized file is refused after at most its stated limit, a truncated or empty one is one line."""
    import gzip

    with scratch_folder(None) as folder:
        if reader.startswith("idx"):
            shutil.copytree(data, folder / "mnist")
            name = "train-labels-idx1-ubyte"
            whole = gzip.decompress((folder / "mnist" / f"{name}.gz").read_bytes())
            if reader == "idx-plain":
                (folder / "mnist" / f"{name}.gz").unlink()
                target, good = folder / "mnist" / name, whole
                oversized = whole + bytes(1 << 16)
            else:
                target, good = folder / "mnist" / f"{name}.gz", (folder / "mnist" / f"{name}.gz").read_bytes()
                oversized = gzip.compress(whole + bytes(1 << 24))  # inflates 16 MiB past its header
            _bad_file(target, kind, good, cut, oversized)
            argv = ["train", "--config", "iteration-1", "--data", "mnist", "--device", "cpu", "--out", "o"]
            argv += ["--epochs", "1", "--subset", "128"]
        elif reader == "space":
            good = SMALL_SPACE.encode()
            _bad_file(folder / "space.toml", kind, good, cut, b"#" * ((1 << 20) + 10))
            argv = ["space", "--space", "space.toml"]
        else:
            from mnist_arch.iterations import get_iteration

            good = json.dumps(get_iteration("iteration-1").config.to_dict()).encode()
            _bad_file(folder / "config.json", kind, good, cut, b" " * ((1 << 20) + 10) + good)
            argv = ["train", "--config", "config.json", "--device", "cpu", "--data", "no-data", "--out", "o"]
        before = snapshot(folder)
        code, err = run_main(argv)
        if kind in ("fifo", "device", "oversized"):
            assert code == 2, f"{reader} {kind}: {argv!r} exited {code}:\n{err}"
        assert code in (0, 2), f"{reader} {kind}: {argv!r} exited {code}:\n{err}"
        if code == 2:
            assert "Traceback" not in err and len(err.splitlines()) == 1, f"{reader} {kind}:\n{err}"
            assert snapshot(folder) == before, f"{reader} {kind}: refused but changed the folder"
