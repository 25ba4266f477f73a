"""config.json of an export: the candidate config plus its parameter count, budget, accuracies and origin.

The file is the candidate config's own dict (same schema_version) with four optional keys on top, so a
hand-written config with only `arch` and `train` loads too. `accuracies` may hold a `confirmation` object
(mean ± std over seeds). Every key is checked; unknown ones are errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_arch.config import CandidateConfig, ConfigError
from mnist_arch.errors import UsageError
from mnist_arch.iterations import ITERATION_NAMES, get_iteration
from mnist_arch.model import count_params

ACCURACY_KEYS = {"val_acc", "test_acc"}
CONFIRMATION = "confirmation"  # accuracies.confirmation: the model's seed confirmation in its study
# key -> allowed JSON types of accuracies.confirmation
CONFIRMATION_KEYS: dict[str, tuple[type, ...]] = {
    "seeds": (int,),
    "epochs": (int,),
    "subset": (int, type(None)),
    "val_mean": (int, float),
    "val_std": (int, float),
    "test_mean": (int, float),
    "test_std": (int, float),
    "winner": (bool,),  # the study's confirmed winner
}
# key -> allowed JSON types of the `trained` block
TRAINED_KEYS: dict[str, tuple[type, ...]] = {
    "epochs": (int,),
    "seed": (int,),
    "subset": (int, type(None)),
    "device": (str,),  # device type the weights were trained and measured on: cpu | cuda
    "source": (str,),  # e.g. "study 'mnist-arch' trial 12", "iteration-3"
    "torch": (str,),
    "mnist_arch": (str,),
}


@dataclass(frozen=True)
class ExportedConfig:
    config: CandidateConfig
    n_params: int
    max_params: int | None = None
    accuracies: dict[str, float] = field(default_factory=dict)  # val_acc, test_acc of the final epoch
    trained: dict[str, Any] = field(default_factory=dict)
    # mean and std over seeds 0..seeds-1 retrained from scratch (CONFIRMATION_KEYS), when confirmed
    confirmation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.config.to_dict()
        data.update(n_params=self.n_params, max_params=self.max_params)
        if self.accuracies or self.confirmation:
            data["accuracies"] = dict(self.accuracies)
            if self.confirmation:
                data["accuracies"][CONFIRMATION] = dict(self.confirmation)
        if self.trained:
            data["trained"] = dict(self.trained)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ExportedConfig:
        """Validate a config.json document; a model over its own max_params is an error."""
        if not isinstance(data, dict):
            raise ConfigError("a config must be a JSON object with 'arch' and 'train'")
        rest = dict(data)
        n_params, max_params = rest.pop("n_params", None), rest.pop("max_params", None)
        accuracies, trained = rest.pop("accuracies", {}), rest.pop("trained", {})
        confirmation = None
        if isinstance(accuracies, dict) and CONFIRMATION in accuracies:
            accuracies = dict(accuracies)
            confirmation = _confirmation(accuracies.pop(CONFIRMATION))
        config = CandidateConfig.from_dict(rest)
        actual = count_params(config.arch)
        for key, value in (("n_params", n_params), ("max_params", max_params)):
            if value is not None and not _is_int(value):
                raise ConfigError(f"'{key}' must be an integer")
        if n_params is not None and n_params != actual:
            raise ConfigError(f"'n_params' is {n_params:,} but the architecture has {actual:,} parameters")
        if max_params is not None and actual > max_params:
            raise ConfigError(f"the model has {actual:,} parameters, over its own max_params {max_params:,}")
        return cls(config, actual, max_params, _accuracies(accuracies), _trained(trained), confirmation)


def load_config_file(path: Path) -> ExportedConfig:
    """Read and validate a config.json; every problem is one UsageError line naming the file."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"cannot read config {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not JSON: {error.msg} at line {error.lineno}") from None
    try:
        return ExportedConfig.from_dict(data)
    except ConfigError as error:
        raise UsageError(f"{path}: {error}") from None


def resolve_config(spec: str) -> tuple[ExportedConfig, str]:
    """--config: an iteration's name or a config.json file (or an export folder holding one)."""
    if spec in ITERATION_NAMES:
        config = get_iteration(spec).config
        return ExportedConfig(config, count_params(config.arch)), spec
    path = Path(spec)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        raise UsageError(
            f"--config {spec}: no such file, and not an iteration name ({', '.join(ITERATION_NAMES)})"
        )
    return load_config_file(path), str(path)


def _accuracies(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        raise ConfigError("'accuracies' must be an object")
    for key, value in data.items():
        if key not in ACCURACY_KEYS:
            allowed = ", ".join(sorted(ACCURACY_KEYS | {CONFIRMATION}))
            raise ConfigError(f"unknown key 'accuracies.{key}' (allowed: {allowed})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"'accuracies.{key}' must be a number in [0, 1]")
    return {k: float(v) for k, v in data.items()}


def _confirmation(data: Any) -> dict[str, Any]:
    where = f"accuracies.{CONFIRMATION}"
    if not isinstance(data, dict):
        raise ConfigError(f"'{where}' must be an object")
    for key, value in data.items():
        if key not in CONFIRMATION_KEYS:
            allowed = ", ".join(sorted(CONFIRMATION_KEYS))
            raise ConfigError(f"unknown key '{where}.{key}' (allowed: {allowed})")
        types = CONFIRMATION_KEYS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"'{where}.{key}' must be {names}")
        if key.endswith(("_mean", "_std")) and not 0 <= value <= 1:
            raise ConfigError(f"'{where}.{key}' must be a number in [0, 1]")
        if key in ("seeds", "epochs") and value < 1:
            raise ConfigError(f"'{where}.{key}' must be a positive integer")
    return dict(data)


def _trained(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError("'trained' must be an object")
    for key, value in data.items():
        if key not in TRAINED_KEYS:
            raise ConfigError(f"unknown key 'trained.{key}' (allowed: {', '.join(sorted(TRAINED_KEYS))})")
        types = TRAINED_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"'trained.{key}' must be {names}")
    return dict(data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
