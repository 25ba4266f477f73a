"""Search-space files: the built-in default, user overrides from TOML, and their validation."""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from mnist_arch.errors import UsageError


@dataclass(frozen=True)
class Fixed:
    value: Any


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choice:
    choices: tuple[Any, ...]


Dimension = Fixed | IntRange | FloatRange | Choice


@dataclass(frozen=True)
class _Rule:
    group: str
    kind: type  # int, float, bool or str
    minimum: float | None = None
    maximum: float | None = None
    open_maximum: bool = False  # the maximum itself is not allowed
    allowed: tuple[Any, ...] = ()  # the values a str (or int) dimension may take; empty: any in range


# Every searchable dimension: its table, value type and the values that make sense. Dimensions of one
# branch (stage 3, the step or the one-cycle schedule, SGD or Adam) are drawn only on that branch.
# 6 unpadded convs after the pool leave 14 - 12 = 2 px; a 7th would shrink the map below 1x1.
RULES: dict[str, _Rule] = {
    "stages": _Rule("architecture", int, 2, 3),
    "padded_first": _Rule("architecture", bool),
    "convs_before_pool": _Rule("architecture", int, 1, 8),
    "convs_after_pool": _Rule("architecture", int, 1, 6),
    "convs_stage3": _Rule("architecture", int, 1, 6),
    "stage3_kernel": _Rule("architecture", int, 1, 3, allowed=(1, 3)),
    "block1_width": _Rule("architecture", int, 1, 256),
    "block2_width": _Rule("architecture", int, 1, 256),
    "block3_width": _Rule("architecture", int, 1, 256),
    "transition": _Rule("architecture", bool),
    "padded_after_pool": _Rule("architecture", bool),
    "second_pool": _Rule("architecture", bool),
    "pool_before_gap": _Rule("architecture", bool),
    "order": _Rule("architecture", str, allowed=("relu_bn", "bn_relu")),
    "conv_bias": _Rule("architecture", bool),
    "head_bias": _Rule("architecture", bool),
    "dropout_at": _Rule("regularization", str, allowed=("conv", "pool")),
    "last_dropout": _Rule("architecture", bool),
    "dropout": _Rule("regularization", float, 0.0, 1.0, open_maximum=True),
    "label_smoothing": _Rule("regularization", float, 0.0, 0.5),
    "rotation": _Rule("regularization", float, 0.0, 180.0),  # [regularization], as before [augmentation]
    "translate": _Rule("augmentation", float, 0.0, 0.5),
    "scale": _Rule("augmentation", float, 0.0, 0.5),
    "affine_p": _Rule("augmentation", float, 0.0, 1.0),
    "brightness": _Rule("augmentation", float, 0.0, 0.5),
    "contrast": _Rule("augmentation", float, 0.0, 0.5),
    "color_p": _Rule("augmentation", float, 0.0, 1.0),
    "optimizer": _Rule("optimizer", str, allowed=("sgd", "adam", "adamw")),
    "init": _Rule("optimizer", str, allowed=("default", "xavier")),
    "lr": _Rule("optimizer", float, 1e-6, 10.0),
    "adam_lr": _Rule("optimizer", float, 1e-6, 10.0),
    "momentum": _Rule("optimizer", float, 0.0, 1.0, open_maximum=True),
    "nesterov": _Rule("optimizer", bool),
    "weight_decay": _Rule("optimizer", float, 0.0, 0.1),
    "batch_size": _Rule("optimizer", int, 1, 60000),
    "schedule": _Rule("schedule", str, allowed=("step", "onecycle")),
    "lr_step": _Rule("schedule", int, 1, 1000),
    "lr_gamma": _Rule("schedule", float, 1e-6, 1.0),
    # Share of the epoch budget done before StepLR starts counting (the space turns it into an epoch).
    "lr_decay_at": _Rule("schedule", float, 0.0, 1.0),
    # One-cycle: lr x start_factor at the start, the full lr at peak_at, x anneal_factor at anneal_at,
    # x anneal_factor x tail_ratio at tail_at, 0 at the end (shares of the epochs, rounded to epochs).
    "start_factor": _Rule("schedule", float, 0.0, 1.0),
    "peak_at": _Rule("schedule", float, 0.0, 1.0),
    "anneal_at": _Rule("schedule", float, 0.0, 1.0),
    "anneal_factor": _Rule("schedule", float, 0.0, 1.0),
    "tail_at": _Rule("schedule", float, 0.0, 1.0),
    "tail_ratio": _Rule("schedule", float, 0.0, 1.0),
}
_SETTINGS = {"budget": {"max_params", "epochs"}, "architecture": {"per_layer_widths", "budget_fill"}}
_GROUPS = sorted({rule.group for rule in RULES.values()} | set(_SETTINGS))


@dataclass(frozen=True)
class SpaceSpec:
    dimensions: dict[str, Dimension]
    max_params: int
    epochs: int  # the epoch budget that fractions of it (lr_decay_at) refer to
    per_layer_widths: bool
    budget_fill: bool  # block2's width drawn as a fill of what the budget leaves
    source: str  # "default" or the override file's path

    def digest(self) -> str:
        """A short hash of what is searched (dimensions and width settings; not the budgets or the file
        name), so that a study can tell when its space file was edited between runs."""
        searched = (sorted(self.dimensions.items()), self.per_layer_widths, self.budget_fill)
        return hashlib.sha256(repr(searched).encode()).hexdigest()[:16]


MAX_SPACE_FILE_BYTES = 1 << 20  # a space file is a few hundred bytes; more is not a space file


def load_spec(path: str | Path | None = None) -> SpaceSpec:
    """The default space, with the dimensions named in `path` (a TOML file) replaced."""
    default_text = resources.files("space").joinpath("default.toml").read_text()
    tables = _flatten(tomllib.loads(default_text), "the default space")
    source = "default"
    if path is not None:
        source = str(path)
        tables.update(_flatten(_read_toml(Path(path)), source))
    return _build(tables, source)


def _read_toml(path: Path) -> dict[str, Any]:
    """A space file's TOML document; every way reading or parsing it fails is one UsageError naming it."""
    where = f"space file {path}"
    if "\0" in str(path):
        raise UsageError(f"--space {str(path)!r} contains a NUL character; give the path of a TOML file")
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO would block the read below
        raise UsageError(f"{where} is not a regular file (a FIFO, device or socket); give the path of a file")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SPACE_FILE_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read {where}: {error.strerror or error}") from None
    if len(raw) > MAX_SPACE_FILE_BYTES:
        raise UsageError(f"{where} is over {MAX_SPACE_FILE_BYTES >> 20} MiB: not a space file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{where} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{where} is not valid TOML: {error}") from None
    except RecursionError:
        raise UsageError(f"{where} nests arrays or tables too deeply to be a space file") from None


def _flatten(document: dict[str, Any], where: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for group, table in document.items():
        if group not in _GROUPS:
            raise UsageError(f"{where}: unknown table [{group}] (known: {', '.join(_GROUPS)})")
        if not isinstance(table, dict):
            raise UsageError(f"{where}: '{group}' must be a table like [{group}]")
        for name, value in table.items():
            known = _SETTINGS.get(group, set()) | {n for n, r in RULES.items() if r.group == group}
            if name not in known:
                raise UsageError(
                    f"{where}: unknown key '{group}.{name}' (known in [{group}]: {', '.join(sorted(known))})"
                )
            flat[name] = value
    return flat


def _build(flat: dict[str, Any], source: str) -> SpaceSpec:
    max_params, epochs = flat.get("max_params", 8000), flat.get("epochs", 15)
    for key, value in (("max_params", max_params), ("epochs", epochs)):
        if not _is_int(value) or value < 1:
            raise UsageError(f"{source}: 'budget.{key}' must be a positive integer")
    per_layer, fill = flat.get("per_layer_widths", False), flat.get("budget_fill", True)
    for key, value in (("per_layer_widths", per_layer), ("budget_fill", fill)):
        if not isinstance(value, bool):
            raise UsageError(f"{source}: 'architecture.{key}' must be true or false")
    dimensions = {name: parse_dimension(name, flat[name], source) for name in RULES if name in flat}
    missing = [name for name in RULES if name not in dimensions]
    if missing:
        raise UsageError(f"{source}: no value for '{RULES[missing[0]].group}.{missing[0]}'")
    return SpaceSpec(dimensions, max_params, epochs, per_layer, fill, source)


def parse_dimension(name: str, raw: Any, source: str) -> Dimension:
    rule = RULES[name]
    key = f"{rule.group}.{name}"
    if not isinstance(raw, dict):
        _check_value(raw, rule, key, source)
        return Fixed(_cast(raw, rule))
    if "choices" in raw:
        if set(raw) != {"choices"}:
            raise UsageError(f"{source}: '{key}' takes either choices or low/high, not both")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise UsageError(f"{source}: '{key}' has an empty choices list; give at least one value")
        for value in choices:
            _check_value(value, rule, key, source)
        return Choice(tuple(dict.fromkeys(_cast(v, rule) for v in choices)))
    unknown = sorted(set(raw) - {"low", "high", "log"})
    if unknown or "low" not in raw or "high" not in raw:
        raise UsageError(
            f"{source}: '{key}' must be a value, {{low = .., high = ..}} or {{choices = [..]}}"
            + (f" (unknown field '{unknown[0]}')" if unknown else "")
        )
    if rule.kind in (bool, str) or rule.allowed:
        raise UsageError(f"{source}: '{key}' takes a value or {{choices = [..]}}, not a range")
    low, high, log = raw["low"], raw["high"], raw.get("log", False)
    _check_value(low, rule, key, source)
    _check_value(high, rule, key, source)
    if not isinstance(log, bool):
        raise UsageError(f"{source}: '{key}.log' must be true or false")
    if low > high:
        raise UsageError(f"{source}: '{key}' has low {low} > high {high}; swap them")
    if low == high:
        return Fixed(_cast(low, rule))
    if log and low <= 0:
        raise UsageError(f"{source}: '{key}' is log-scaled, so low must be > 0")
    if rule.kind is int:
        return IntRange(int(low), int(high), log)
    return FloatRange(float(low), float(high), log)


def _check_value(value: Any, rule: _Rule, key: str, source: str) -> None:
    if rule.allowed and (isinstance(value, bool) or value not in rule.allowed):
        raise UsageError(
            f"{source}: '{key}' = {value!r} is not one of {', '.join(repr(v) for v in rule.allowed)}"
        )
    if rule.kind is str:
        return
    if rule.kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{source}: '{key}' must be true or false, got {value!r}")
        return
    if rule.kind is int and not _is_int(value):
        raise UsageError(f"{source}: '{key}' must be an integer, got {value!r}")
    if rule.kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise UsageError(f"{source}: '{key}' must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{source}: '{key}' must be finite, got {value!r}")
    too_high = rule.maximum is not None and (
        value >= rule.maximum if rule.open_maximum else value > rule.maximum
    )
    if (rule.minimum is not None and value < rule.minimum) or too_high:
        bound = "below" if rule.open_maximum else "at most"
        extra = " (more would shrink the image below 1x1)" if key.endswith("convs_after_pool") else ""
        raise UsageError(
            f"{source}: '{key}' = {value!r} is out of range: it must be at least {rule.minimum} "
            f"and {bound} {rule.maximum}{extra}"
        )


def _cast(value: Any, rule: _Rule) -> Any:
    return float(value) if rule.kind is float else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
