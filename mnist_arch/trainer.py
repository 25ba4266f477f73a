"""Train one candidate: whole dataset on the device, rotation in batch, SGD + StepLR.

On CUDA the whole training step (gather, rotate, forward, backward, update) is captured once in a CUDA
graph and replayed; on CPU, or where capture fails, the same step runs eagerly. After every epoch the
caller's `on_epoch` sees the accuracies and may stop the run (pruning).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mnist_arch.augment import rotate
from mnist_arch.config import CandidateConfig
from mnist_arch.data import Mnist, normalize
from mnist_arch.model import Net, build_model

EVAL_BATCH = 2000
DIVERGENCE_CHECK = 50  # steps between checks that the loss is still finite
WARMUP_STEPS = 3  # eager steps on a side stream before capture; they are real training steps


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochStats:
    epoch: int  # 1-based
    lr: float
    train_loss: float
    val_acc: float
    test_acc: float
    seconds: float  # training steps only, device synchronised


@dataclass
class TrainResult:
    history: list[EpochStats] = field(default_factory=list)
    stopped_early: bool = False
    graph: bool = False  # whether the step ran as a CUDA graph
    model: Net | None = None

    @property
    def sec_per_epoch(self) -> float:
        return sum(e.seconds for e in self.history) / max(1, len(self.history))


@dataclass
class DeviceData:
    """Normalised float images and labels resident on the training device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def from_mnist(cls, data: Mnist, device: torch.device) -> DeviceData:
        return cls(
            normalize(data.train_images.to(device)),
            data.train_labels.to(device),
            normalize(data.val_images.to(device)),
            data.val_labels.to(device),
            normalize(data.test_images.to(device)),
            data.test_labels.to(device),
        )


_graph_warned = False


def train(
    config: CandidateConfig,
    data: DeviceData,
    *,
    epochs: int,
    seed: int,
    on_epoch: Callable[[EpochStats], bool] | None = None,
    use_graph: bool | None = None,
) -> TrainResult:
    """Train `config` from scratch for up to `epochs`; `on_epoch` returning True stops early."""
    device = data.train_x.device
    recipe = config.train
    torch.manual_seed(seed)  # weights and dropout masks
    model = build_model(config.arch).to(device)
    params = [p for p in model.parameters()]
    momentum_buffers = [torch.zeros_like(p) for p in params]
    lr = torch.tensor(recipe.lr, device=device)
    loss_sum = torch.zeros((), device=device)

    generator = torch.Generator(device=device).manual_seed(seed)  # data order and rotation angles
    batch = min(recipe.batch_size, len(data.train_y))
    batch_index = torch.zeros(batch, dtype=torch.long, device=device)
    batch_angle = torch.zeros(batch, device=device)

    def step() -> None:
        for p in params:
            p.grad = None
        x = data.train_x[batch_index]
        if recipe.rotation > 0:
            x = rotate(x, batch_angle)
        loss = F.cross_entropy(model(x), data.train_y[batch_index])
        loss.backward()
        # SGD with momentum (PyTorch's formula), lr read from a tensor so a captured graph follows StepLR.
        with torch.no_grad():
            torch._foreach_mul_(momentum_buffers, recipe.momentum)
            torch._foreach_add_(momentum_buffers, [p.grad for p in params])
            torch._foreach_sub_(params, torch._foreach_mul(momentum_buffers, lr))
            loss_sum.add_(loss.detach())

    graph_wanted = device.type == "cuda" if use_graph is None else use_graph
    result = TrainResult(model=model)
    replay: Callable[[], None] = step
    steps_per_epoch = len(data.train_y) // batch

    for epoch in range(1, epochs + 1):
        # lr for this epoch (StepLR from lr_decay_start), fresh order and angles
        lr.fill_(recipe.lr_at(epoch))
        loss_sum.zero_()
        order = torch.randperm(len(data.train_y), generator=generator, device=device)
        angles = torch.rand(len(data.train_y), generator=generator, device=device) * 2 - 1
        angles *= recipe.rotation
        model.train()
        _sync(device)
        start = time.perf_counter()

        # forward, backward, update over every full batch
        for i in range(steps_per_epoch):
            batch_index.copy_(order[i * batch : (i + 1) * batch])
            batch_angle.copy_(angles[i * batch : (i + 1) * batch])
            if graph_wanted and replay is step and i == WARMUP_STEPS:
                replay, result.graph = _capture(step, device)
                graph_wanted = result.graph
            if graph_wanted and replay is step and i < WARMUP_STEPS:
                _on_side_stream(step, device)
            else:
                replay()
            # A diverged run stops within DIVERGENCE_CHECK steps, at the price of one sync per check.
            if (i + 1) % DIVERGENCE_CHECK == 0 and not math.isfinite(loss_sum.item()):
                raise DivergedError(f"training loss became {loss_sum.item()} in epoch {epoch}, step {i + 1}")
        _sync(device)
        seconds = time.perf_counter() - start

        # evaluate, report, maybe stop
        train_loss = loss_sum.item() / max(1, steps_per_epoch)
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss became {train_loss} in epoch {epoch}")
        model.eval()
        stats = EpochStats(
            epoch=epoch,
            lr=recipe.lr_at(epoch),
            train_loss=train_loss,
            val_acc=evaluate(model, data.val_x, data.val_y),
            test_acc=evaluate(model, data.test_x, data.test_y),
            seconds=seconds,
        )
        result.history.append(stats)
        if on_epoch is not None and on_epoch(stats) and epoch < epochs:
            result.stopped_early = True
            break
    return result


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy in [0, 1] of `model` (in eval mode) on `images`."""
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for start in range(0, len(labels), EVAL_BATCH):
        logits = model(images[start : start + EVAL_BATCH])
        correct += (logits.argmax(1) == labels[start : start + EVAL_BATCH]).sum()
    return correct.item() / max(1, len(labels))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _on_side_stream(step: Callable[[], None], device: torch.device) -> None:
    # Warm-up steps run off the default stream, as CUDA graph capture requires.
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream(device).wait_stream(stream)


def _capture(step: Callable[[], None], device: torch.device) -> tuple[Callable[[], None], bool]:
    global _graph_warned
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            step()
    except Exception as error:  # noqa: BLE001 - any capture failure falls back to the eager step
        if not _graph_warned:
            warnings.warn(f"CUDA graph capture failed ({error}); training eagerly", stacklevel=2)
            _graph_warned = True
        torch.cuda.synchronize(device)
        return step, False
    return graph.replay, True
