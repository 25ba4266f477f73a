"""config.json of an export: the candidate config plus its parameter count, budget, accuracies and origin.

The file is the candidate config's own dict (same schema_version) with optional keys on top, so a
hand-written config with only `arch` and `train` loads too, and so do exports written before a key existed.
`accuracies` may hold a `confirmation` object (mean ± std over seeds). Every key is checked; unknown ones
are errors.

An export also states what a reader needs without this package:
- `input`: the input contract of weights.pt: shape (N, 1, 28, 28), raw 0-255 pixels divided by 255, then
  standardised with `mean` and `std`, and the number of classes;
- `model`: the layers as torch.nn constructor calls, in the order of the Sequential whose state_dict
  weights.pt is (keys `layers.<index>.<name>`), and the forward pass;
- `dataset`: the identity of the data the model was trained and measured on, as the study recorded it;
- `standalone`: the programs written beside it (model.pt2, model.onnx) and their input and output.
`input` and `model` are derived from the package and the architecture: a file that disagrees with them is
refused, like a wrong `n_params`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_arch.config import ArchConfig, CandidateConfig, ConfigError
from mnist_arch.data import MEAN, STD
from mnist_arch.errors import UsageError
from mnist_arch.model import INPUT_SIDE, Layer, count_params, layer_plan
from mnist_arch.references import REFERENCE_NAMES, get_reference
from mnist_arch.regular_files import open_regular, read_at_most

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
INPUT_SHAPE = ["N", 1, INPUT_SIDE, INPUT_SIDE]
PIXEL_SCALE = "raw grey values 0-255 (uint8 in the MNIST IDX files) divided by 255"
NORMALISATION = "x = (pixels / 255 - mean) / std, per pixel, before the first layer"
STANDALONE_KEYS = {"input", "output", "files", "skipped"}
WEIGHTS_SHA256 = "weights_sha256"  # the sha256 of weights.pt beside it
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB; more is not one


@dataclass(frozen=True)
class ExportedConfig:
    config: CandidateConfig
    n_params: int
    max_params: int | None = None
    accuracies: dict[str, float] = field(default_factory=dict)  # val_acc, test_acc of the final epoch
    trained: dict[str, Any] = field(default_factory=dict)
    # mean and std over seeds 0..seeds-1 retrained from scratch (CONFIRMATION_KEYS), when confirmed
    confirmation: dict[str, Any] | None = None
    # the study's "dataset" attribute (mnist_arch.dataset), carried as it is; or a bare fingerprint
    dataset: dict[str, Any] | str | None = None
    standalone: dict[str, Any] | None = None  # Programs.description() of the programs written with it
    # (mean, std) the weights expect their input standardised with; exports that predate the `input`
    # block were trained with the same constants
    normalisation: tuple[float, float] = (MEAN, STD)
    weights_sha256: str | None = None  # of weights.pt, written by export; older exports have none

    def to_dict(self) -> dict[str, Any]:
        data = self.config.to_dict()
        data.update(n_params=self.n_params, max_params=self.max_params)
        if self.accuracies or self.confirmation:
            data["accuracies"] = dict(self.accuracies)
            if self.confirmation:
                data["accuracies"][CONFIRMATION] = dict(self.confirmation)
        if self.trained:
            data["trained"] = dict(self.trained)
        data["input"] = input_contract(self.config.arch, self.normalisation)
        data["model"] = model_description(self.config.arch)
        if self.dataset is not None:
            data["dataset"] = self.dataset if isinstance(self.dataset, str) else dict(self.dataset)
        if self.standalone is not None:
            data["standalone"] = dict(self.standalone)
        if self.weights_sha256 is not None:
            data[WEIGHTS_SHA256] = self.weights_sha256
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
        contract, model = rest.pop("input", None), rest.pop("model", None)
        dataset, standalone = rest.pop("dataset", None), rest.pop("standalone", None)
        weights_sha256 = rest.pop(WEIGHTS_SHA256, None)
        if weights_sha256 is not None and not (
            isinstance(weights_sha256, str) and re.fullmatch(r"[0-9a-f]{64}", weights_sha256)
        ):
            raise ConfigError(
                f"'{WEIGHTS_SHA256}' must be 64 lowercase hex digits (the sha256 of weights.pt)"
            )
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
        if dataset is not None and not isinstance(dataset, (dict, str)):
            raise ConfigError("'dataset' must be an object or a fingerprint (the data the model saw)")
        _check_model(model, config.arch)
        return cls(
            config,
            actual,
            max_params,
            _accuracies(accuracies),
            _trained(trained),
            confirmation,
            dataset,
            _standalone(standalone),
            _normalisation(contract, config.arch),
            weights_sha256,
        )


def load_config_file(path: Path) -> ExportedConfig:
    """Read and validate a config.json; every problem is one UsageError line naming the file."""
    try:
        return ExportedConfig.from_dict(read_json(path))
    except ConfigError as error:
        raise UsageError(f"{path}: {error}") from None


def read_json(path: Path) -> Any:
    """The JSON document in `path`: UTF-8 (a byte-order mark is allowed), finite numbers only."""
    if path.is_dir():
        raise UsageError(f"config {path} is a folder; name the config.json file inside it")
    try:
        with open_regular(path, "config") as file:
            raw = read_at_most(file, MAX_CONFIG_BYTES)
    except IsADirectoryError:
        raise UsageError(f"config {path} is a folder; name the config.json file inside it") from None
    except PermissionError:
        raise UsageError(f"cannot read config {path}: permission denied; make it readable") from None
    except OSError as error:
        raise UsageError(f"cannot read config {path}: {error.strerror or error}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UsageError(f"config {path} is over {MAX_CONFIG_BYTES >> 20} MiB: not a config.json")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"config {path} is not UTF-8 text (byte {error.start}); save it as UTF-8 JSON"
        ) from None
    try:
        return json.loads(text, parse_constant=_non_finite, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not JSON: {error.msg} at line {error.lineno}") from None
    except _NonFiniteNumber as error:
        raise UsageError(f"{path} is not JSON: {error} is not a JSON number; write a finite number") from None
    except RecursionError:
        raise UsageError(f"{path} nests too deeply to be a config.json (a few levels are enough)") from None
    except ValueError as error:  # an integer of thousands of digits: Python refuses to convert it
        raise UsageError(f"{path} is not a usable config: {str(error).split(':')[0]}") from None


class _NonFiniteNumber(ValueError):
    """NaN, Infinity or a float too large for a double: Python's json reads them, JSON has none."""


def _non_finite(token: str) -> Any:
    raise _NonFiniteNumber(token)


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NonFiniteNumber(token)
    return value


def input_contract(arch: ArchConfig, normalisation: tuple[float, float] = (MEAN, STD)) -> dict[str, Any]:
    """What weights.pt expects: the `input` block of config.json."""
    mean, std = normalisation
    return {
        "shape": list(INPUT_SHAPE),
        "dtype": "float32",
        "pixels": PIXEL_SCALE,
        "mean": mean,
        "std": std,
        "normalisation": NORMALISATION,
        "classes": arch.num_classes,
    }


def model_description(arch: ArchConfig) -> dict[str, Any]:
    """The `model` block: enough to rebuild the network with torch.nn alone and load weights.pt into it."""
    return {
        "module": "torch.nn.Sequential",
        "layers": [layer_call(layer) for layer in layer_plan(arch)],
        "state_dict_prefix": "layers.",
        "forward": "logits = torch.flatten(layers(x), 1): shape [N, classes], the digit is the argmax; "
        "call model.eval() first (BatchNorm running statistics, no dropout)",
    }


def layer_call(layer: Layer) -> dict[str, Any]:
    """One layer as `getattr(torch.nn, type)(**args)`."""
    args: dict[str, Any] = {}
    if layer.kind == "Conv2d":
        args = {
            "in_channels": layer.in_channels,
            "out_channels": layer.out_channels,
            "kernel_size": layer.kernel,
            "padding": layer.padding,
            "bias": layer.bias,
        }
    elif layer.kind == "BatchNorm2d":
        args = {"num_features": layer.out_channels}
    elif layer.kind == "Dropout2d":
        args = {"p": layer.rate}
    elif layer.kind == "MaxPool2d":
        args = {"kernel_size": layer.kernel}
    elif layer.kind == "AdaptiveAvgPool2d":
        args = {"output_size": 1}
    return {"type": layer.kind, "args": args}


def resolve_config(spec: str) -> tuple[ExportedConfig, str]:
    """--config: a reference's name (`mnist-arch baselines`) or a config.json file (or an export folder
    holding one)."""
    if spec in REFERENCE_NAMES:
        config = get_reference(spec).config
        return ExportedConfig(config, count_params(config.arch)), spec
    path = Path(spec)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        raise UsageError(
            f"--config {spec}: no such file, and not a reference's name ({', '.join(REFERENCE_NAMES)})"
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


def _require_known_keys(data: Any, expected: dict[str, Any], section: str) -> None:
    """`data` is an object whose keys are all among `expected`'s."""
    if not isinstance(data, dict):
        raise ConfigError(f"'{section}' must be an object")
    for key in data:
        if key not in expected:
            raise ConfigError(f"unknown key '{section}.{key}' (allowed: {', '.join(sorted(expected))})")


def _normalisation(data: Any, arch: ArchConfig) -> tuple[float, float]:
    if data is None:
        return MEAN, STD
    expected = input_contract(arch)
    _require_known_keys(data, expected, "input")
    for key in ("mean", "std"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'input.{key}' must be a number")
    if not data["std"] > 0:
        raise ConfigError("'input.std' must be positive")
    for key in ("shape", "dtype", "classes"):
        if key in data and data[key] != expected[key]:
            raise ConfigError(f"'input.{key}' is {data[key]!r}; the model takes {expected[key]!r}")
    return float(data["mean"]), float(data["std"])


def _check_model(data: Any, arch: ArchConfig) -> None:
    if data is None:
        return
    expected = model_description(arch)
    _require_known_keys(data, expected, "model")
    if data.get("layers", expected["layers"]) != expected["layers"]:
        raise ConfigError("'model.layers' does not match 'arch'; delete 'model' to derive it from 'arch'")
    if data.get("state_dict_prefix", expected["state_dict_prefix"]) != expected["state_dict_prefix"]:
        raise ConfigError(f"'model.state_dict_prefix' must be {expected['state_dict_prefix']!r}")


def _standalone(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError("'standalone' must be an object")
    for key in data:
        if key not in STANDALONE_KEYS:
            raise ConfigError(
                f"unknown key 'standalone.{key}' (allowed: {', '.join(sorted(STANDALONE_KEYS))})"
            )
    files, skipped = data.get("files", []), data.get("skipped", {})
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise ConfigError("'standalone.files' must be a list of file names")
    if not isinstance(skipped, dict) or not all(isinstance(v, str) for v in skipped.values()):
        raise ConfigError("'standalone.skipped' must map file names to reasons")
    return dict(data)
