"""Train one candidate: whole dataset on the device, augmentation in batch, SGD or Adam, lr per epoch.

On CUDA the whole training step (gather, rotate, forward, backward, update) is captured once in a CUDA
graph and replayed; on CPU, or where capture fails, the same step runs eagerly, and a long CPU run compiles
its model's forward and backward with torch.compile (`compile_pays`). After every epoch the
caller's `on_epoch` sees the accuracies its `Evaluation` asked for and may stop the run (pruning).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mnist_arch.augment import AUG_COLUMNS, augment, draw_augmentation, rotate
from mnist_arch.config import CandidateConfig
from mnist_arch.model import Net, build_model, layer_plan
from mnist_arch.pixels import normalize

if TYPE_CHECKING:
    from mnist_arch.data import Mnist

EVAL_BATCH = 2000
# On the CPU a batch whose activations stay in cache evaluates 1.5-2x faster, with the same accuracies.
EVAL_BATCH_CPU = 256
DIVERGENCE_CHECK = 50  # steps between checks that the loss is still finite
WARMUP_STEPS = 3  # eager steps on a side stream before capture; they are real training steps
ADAM_BETA2, ADAM_EPS = 0.999, 1e-8
# On the CPU torch.compile (inductor's C++ kernels fuse batch norm, ReLU and dropout) measured between
# 1.03x and 1.3x eager's speed on an idle machine, and compiling a new architecture takes 20-33 s on two
# cores (BENCHMARKS.md, "CPU step"): only very long runs compile by default (73 full-data epochs).
COMPILE_MIN_IMAGE_EPOCHS = 4_000_000
COMPILED_ARCHITECTURES = 100_000  # compiled graphs one process may keep (dynamo's recompile limit)


def compile_pays(device: torch.device, images: int, epochs: int) -> bool:
    """Whether a run of `epochs` over `images` training images on `device` should compile its model."""
    return device.type == "cpu" and images * epochs >= COMPILE_MIN_IMAGE_EPOCHS


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochStats:
    epoch: int  # 1-based
    lr: float
    train_loss: float
    val_acc: float | None  # None: not measured after this epoch (see Evaluation)
    test_acc: float | None
    seconds: float  # training steps only, device synchronised
    eval_seconds: float = 0.0  # measuring the accuracies after the steps


@dataclass(frozen=True)
class Evaluation:
    """After which epochs a run measures validation and test accuracy.

    Validation after every epoch in `val_epochs` (None: every epoch) and after the last; test after the
    last, and also wherever validation runs when `test_with_val` (per-epoch curves, a test objective).
    A search measures only what it reads: validation where the pruner decides, test at the end.
    """

    epochs: int  # the run's last epoch; 0 with val_epochs None means "every epoch"
    val_epochs: frozenset[int] | None = None
    test_with_val: bool = True

    @classmethod
    def final_only(cls, epochs: int) -> Evaluation:
        return cls(epochs, frozenset(), test_with_val=False)

    def val_at(self, epoch: int) -> bool:
        return self.val_epochs is None or epoch in self.val_epochs or epoch >= self.epochs

    def test_at(self, epoch: int) -> bool:
        return epoch >= self.epochs or (self.test_with_val and self.val_at(epoch))


EVERY_EPOCH = Evaluation(0)


@dataclass
class TrainResult:
    history: list[EpochStats] = field(default_factory=list)
    stopped_early: bool = False
    graph: bool = False  # whether the step ran as a CUDA graph
    compiled: bool = False  # whether the model trained compiled (torch.compile, CPU)
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


class DropoutMasks:
    """All Dropout2d masks of one training step, drawn at once from the run's own generator.

    One draw of shape (batch, channels of every Dropout2d layer, in forward order) per step: a run
    interleaved with others never takes their random numbers, and the fused engine draws each
    member's masks the same way, so a member gets exactly the masks of the run alone.
    """

    def __init__(self, p: float, generator: torch.Generator, batch: int, device: torch.device) -> None:
        self.keep, self.generator, self.batch, self.device = 1 - p, generator, batch, device
        self.channels = 0
        self.current = torch.empty(0, device=device)

    def add_layer(self, channels: int) -> slice:
        """The columns of the next layer's mask."""
        columns = slice(self.channels, self.channels + channels)
        self.channels += channels
        return columns

    def draw(self) -> None:
        if self.keep < 1 and self.channels:
            noise = torch.empty(self.batch, self.channels, device=self.device)
            self.current = noise.bernoulli_(self.keep, generator=self.generator).div_(self.keep)


class Dropout2d(nn.Dropout2d):
    """nn.Dropout2d whose channel mask is its columns of the step's DropoutMasks draw."""

    def __init__(self, p: float, masks: DropoutMasks, columns: slice) -> None:
        super().__init__(p)
        self.masks, self.columns = masks, columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * self.masks.current[:, self.columns, None, None]


class TrainingRun:
    """One candidate's training from scratch, advanced one batch at a time.

    `begin_epoch(e)`, `steps_per_epoch` x `step()`, `end_epoch()` is one epoch; several runs can be
    interleaved step by step in one process (they share only the read-only data). On CUDA each run
    has its own stream and, after WARMUP_STEPS eager steps, its own captured graph.
    """

    def __init__(
        self,
        config: CandidateConfig,
        data: DeviceData,
        *,
        seed: int,
        use_graph: bool | None = None,
        evaluation: Evaluation = EVERY_EPOCH,
        compiled: bool = False,
    ) -> None:
        self.config, self.data, self.evaluation = config, data, evaluation
        self.device = device = data.train_x.device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.current_stream(device))  # the data is ready
        with self._on_stream():
            torch.manual_seed(seed)  # weights, then the dropout generator's start
            self.model = build_model(config.arch).to(device)
            if config.train.init == "xavier":
                init_xavier(self.model)
            self.dropout_generator = dropout_generator_after_weights(device)
            self.batch = min(config.train.batch_size, len(data.train_y))
            self.masks = DropoutMasks(config.arch.dropout, self.dropout_generator, self.batch, device)
            for index, layer in enumerate(layer_plan(config.arch)):
                if layer.kind == "Dropout2d":
                    columns = self.masks.add_layer(layer.out_channels)
                    self.model.layers[index] = Dropout2d(layer.rate, self.masks, columns)
            self.params = list(self.model.parameters())
            self.momentum_buffers = [torch.zeros_like(p) for p in self.params]
            if config.train.optimizer != "sgd":
                self.second_moments = [torch.zeros_like(p) for p in self.params]
                self.step_count = torch.zeros((), device=device)
            self.lr = torch.tensor(config.train.lr, device=device)
            self.loss_sum = torch.zeros((), device=device)
            self.generator = torch.Generator(device=device).manual_seed(seed)  # data order and angles
            self.batch_index = torch.zeros(self.batch, dtype=torch.long, device=device)
            self.batch_angle = torch.zeros(self.batch, device=device)
            self.batch_aug = torch.zeros(self.batch, AUG_COLUMNS, device=device)
        self.steps_per_epoch = len(data.train_y) // self.batch
        self.result = TrainResult(model=self.model, compiled=compiled and device.type == "cpu")
        # Training steps call the compiled module; evaluation calls the model itself (no second compile
        # for eval mode). Both share the parameters.
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self.model
        if self.result.compiled:
            # compiling on a CPU-only torch logs that no CUDA runtime is found: true, and not for the user
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            # Every new architecture is a recompile of the same forward code; past dynamo's limit (8) it
            # would quietly train the rest of a search's trials eagerly.
            torch._dynamo.config.recompile_limit = COMPILED_ARCHITECTURES
            torch._dynamo.config.accumulated_recompile_limit = COMPILED_ARCHITECTURES
            self._forward = torch.compile(self.model, dynamic=False)
        self.epoch = 0
        self.step_index = 0  # within the epoch
        self._graph_wanted = device.type == "cuda" if use_graph is None else use_graph
        self._replay: Callable[[], None] = self._step
        self._order = self._angles = self._aug = torch.empty(0, device=device)  # set by begin_epoch
        self._start = 0.0

    @property
    def epoch_done(self) -> bool:
        return self.step_index >= self.steps_per_epoch

    def begin_epoch(self, epoch: int) -> None:
        """lr for this epoch (StepLR from lr_decay_start), fresh order and angles."""
        recipe, n = self.config.train, len(self.data.train_y)
        with self._on_stream():
            self.lr.fill_(recipe.lr_at(epoch))
            self.loss_sum.zero_()
            self._order = torch.randperm(n, generator=self.generator, device=self.device)
            self._angles = torch.rand(n, generator=self.generator, device=self.device) * 2 - 1
            self._angles *= recipe.rotation
            if recipe.augments:
                self._aug = draw_augmentation(recipe, self._angles, self.generator)
            self.model.train()
            self._sync()
        self.epoch, self.step_index = epoch, 0
        self._start = time.perf_counter()

    def step(self) -> None:
        """Forward, backward and update on the epoch's next batch."""
        i, b = self.step_index, self.batch
        with self._on_stream():
            self.batch_index.copy_(self._order[i * b : (i + 1) * b])
            self.batch_angle.copy_(self._angles[i * b : (i + 1) * b])
            if self.config.train.augments:
                self.batch_aug.copy_(self._aug[i * b : (i + 1) * b])
            # WARMUP_STEPS eager steps, on this run's (side) stream as capture requires, then capture.
            if self._graph_wanted and i == WARMUP_STEPS:
                self._replay, self.result.graph = capture_step(
                    self._step, self.device, self.stream, [self.dropout_generator]
                )
                self._graph_wanted = False
            if self.result.compiled and self.epoch == 1 and i == 0:
                self._first_compiled_step()
            else:
                self._replay()
            self.step_index += 1
            # A diverged run stops within DIVERGENCE_CHECK steps, at the price of one sync per check.
            if self.step_index % DIVERGENCE_CHECK == 0 and not math.isfinite(self.loss_sum.item()):
                raise DivergedError(
                    f"training loss became {self.loss_sum.item()} in epoch {self.epoch}, step {i + 1}"
                )

    def end_epoch(self) -> EpochStats:
        """Evaluate after the epoch's steps; the stats are also appended to `result.history`."""
        with self._on_stream():
            self._sync()
            seconds = time.perf_counter() - self._start
            train_loss = self.loss_sum.item() / max(1, self.steps_per_epoch)
            if not math.isfinite(train_loss):
                raise DivergedError(f"training loss became {train_loss} in epoch {self.epoch}")
            self.model.eval()
            measured = time.perf_counter()
            val_acc = test_acc = None
            if self.evaluation.val_at(self.epoch):
                val_acc = evaluate(self.model, self.data.val_x, self.data.val_y)
            if self.evaluation.test_at(self.epoch):
                test_acc = evaluate(self.model, self.data.test_x, self.data.test_y)
            stats = EpochStats(
                epoch=self.epoch,
                lr=self.config.train.lr_at(self.epoch),
                train_loss=train_loss,
                val_acc=val_acc,
                test_acc=test_acc,
                seconds=seconds,
                eval_seconds=time.perf_counter() - measured,
            )
        self.result.history.append(stats)
        return stats

    def _step(self) -> None:
        for p in self.params:
            p.grad = None
        self.masks.draw()
        recipe = self.config.train
        x = self.data.train_x[self.batch_index]
        if recipe.augments:
            x = augment(x, self.batch_aug)
        elif recipe.rotation > 0:
            x = rotate(x, self.batch_angle)
        loss = F.cross_entropy(
            self._forward(x), self.data.train_y[self.batch_index], label_smoothing=recipe.label_smoothing
        )
        loss.backward()
        # The update reads lr from a tensor, so a captured graph follows the schedule.
        with torch.no_grad():
            if recipe.optimizer == "sgd":
                self._sgd_update()
            else:
                self._adam_update()
            self.loss_sum.add_(loss.detach())

    def _first_compiled_step(self) -> None:
        """The first step compiles (forward, then backward); where that fails (no C++ compiler, say) the
        run goes on eagerly from where it stood: this step again, with the same dropout masks."""
        masks_state = self.dropout_generator.get_state()
        buffers = {name: tensor.clone() for name, tensor in self.model.state_dict().items()}
        try:
            self._step()
        except Exception as error:  # noqa: BLE001 - any compile failure falls back to the eager step
            warnings.warn(f"torch.compile failed ({error}); training eagerly", stacklevel=2)
            self._forward, self.result.compiled = self.model, False
            self.dropout_generator.set_state(masks_state)
            self.model.load_state_dict(buffers)  # a forward that ran updated batch norm's statistics
            self._step()

    def _sgd_update(self) -> None:
        """SGD with momentum, PyTorch's formula (dampening 0); weight decay as L2 on the gradient."""
        recipe = self.config.train
        grads = [p.grad for p in self.params]
        if recipe.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=recipe.weight_decay)
        torch._foreach_mul_(self.momentum_buffers, recipe.momentum)
        torch._foreach_add_(self.momentum_buffers, grads)
        update = self.momentum_buffers
        if recipe.nesterov:
            update = torch._foreach_add(grads, self.momentum_buffers, alpha=recipe.momentum)
        torch._foreach_sub_(self.params, torch._foreach_mul(update, self.lr))

    def _adam_update(self) -> None:
        """Adam / AdamW, PyTorch's formulas with beta1 = the recipe's momentum, beta2 0.999, eps 1e-8."""
        recipe = self.config.train
        beta1, beta2 = recipe.momentum, ADAM_BETA2
        grads = [p.grad for p in self.params]
        if recipe.weight_decay and recipe.optimizer == "adam":
            grads = torch._foreach_add(grads, self.params, alpha=recipe.weight_decay)
        if recipe.weight_decay and recipe.optimizer == "adamw":
            torch._foreach_mul_(self.params, 1 - self.lr * recipe.weight_decay)
        self.step_count.add_(1)
        torch._foreach_lerp_(self.momentum_buffers, grads, 1 - beta1)
        torch._foreach_mul_(self.second_moments, beta2)
        torch._foreach_addcmul_(self.second_moments, grads, grads, 1 - beta2)
        first_correction = 1 - torch.pow(beta1, self.step_count)
        second_correction = (1 - torch.pow(beta2, self.step_count)).sqrt()
        denominators = torch._foreach_sqrt(self.second_moments)
        torch._foreach_div_(denominators, second_correction)
        torch._foreach_add_(denominators, ADAM_EPS)
        updates = torch._foreach_div(self.momentum_buffers, denominators)
        torch._foreach_sub_(self.params, torch._foreach_mul(updates, self.lr / first_correction))

    def _on_stream(self) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def _sync(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()


def train(
    config: CandidateConfig,
    data: DeviceData,
    *,
    epochs: int,
    seed: int,
    on_epoch: Callable[[EpochStats], bool] | None = None,
    use_graph: bool | None = None,
    evaluation: Evaluation = EVERY_EPOCH,
    compiled: bool | None = None,
) -> TrainResult:
    """Train `config` from scratch for up to `epochs`; `on_epoch` returning True stops early.
    `compiled` None: compile where `compile_pays`."""
    if compiled is None:
        compiled = compile_pays(data.train_x.device, len(data.train_y), epochs)
    run = TrainingRun(config, data, seed=seed, use_graph=use_graph, evaluation=evaluation, compiled=compiled)
    for epoch in range(1, epochs + 1):
        run.begin_epoch(epoch)
        while not run.epoch_done:
            run.step()
        stats = run.end_epoch()
        if on_epoch is not None and on_epoch(stats) and epoch < epochs:
            run.result.stopped_early = True
            break
    return run.result


def train_together(
    jobs: Sequence[tuple[CandidateConfig, int]],
    data: DeviceData,
    *,
    epochs: int,
    on_epoch: Callable[[int, EpochStats], None] | None = None,
    in_flight: int = 32,
    evaluation: Evaluation = EVERY_EPOCH,
) -> list[TrainResult]:
    """Train each (config, seed) for `epochs`, up to `in_flight` runs interleaved step by step.

    Each result equals `train(config, data, epochs=epochs, seed=seed)`'s (exactly on CPU); on CUDA the
    runs' graphs overlap on their streams. `on_epoch(job_index, stats)` sees every epoch's end.
    """
    results: list[TrainResult | None] = [None] * len(jobs)
    for first in range(0, len(jobs), in_flight):
        runs = {
            index: TrainingRun(config, data, seed=seed, evaluation=evaluation)
            for index, (config, seed) in enumerate(jobs[first : first + in_flight], start=first)
        }
        for epoch in range(1, epochs + 1):
            for run in runs.values():
                run.begin_epoch(epoch)
            while not all(run.epoch_done for run in runs.values()):
                for run in runs.values():
                    if not run.epoch_done:
                        run.step()
            for index, run in runs.items():
                stats = run.end_epoch()
                if on_epoch is not None:
                    on_epoch(index, stats)
        for index, run in runs.items():
            results[index] = run.result
    return [result for result in results if result is not None]


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy in [0, 1] of `model` (in eval mode) on `images`."""
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    batch = EVAL_BATCH_CPU if images.device.type == "cpu" else EVAL_BATCH
    for start in range(0, len(labels), batch):
        logits = model(images[start : start + batch])
        correct += (logits.argmax(1) == labels[start : start + batch]).sum()
    return correct.item() / max(1, len(labels))


def init_xavier(model: nn.Module) -> None:
    """Xavier-uniform conv weights and zero conv biases (BatchNorm keeps PyTorch's 1 and 0)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def dropout_generator_after_weights(device: torch.device) -> torch.Generator:
    # On CPU the masks continue the stream that drew the weights, as nn.Dropout2d's did. On CUDA the
    # generator gets a seed drawn from that stream: seeding it with the run's seed would make its masks
    # mirror the data generator's numbers (same philox seed and offsets).
    weights_stream = torch.Generator()
    weights_stream.set_state(torch.get_rng_state())
    if device.type == "cpu":
        return weights_stream
    seed = int(torch.randint(0, 2**62, (), generator=weights_stream))
    return torch.Generator(device=device).manual_seed(seed)


def capture_step(
    step: Callable[[], None],
    device: torch.device,
    stream: torch.cuda.Stream | None,
    generators: list[torch.Generator],
) -> tuple[Callable[[], None], bool]:
    global _graph_warned
    graph = torch.cuda.CUDAGraph()
    try:
        # A generator used inside a graph must be registered with it, so each replay advances its offset.
        # Newer torch registers them by itself and warns that the call is a no-op.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for generator in generators:
                graph.register_generator_state(generator)
        with torch.cuda.graph(graph, stream=stream):
            step()
    except Exception as error:  # noqa: BLE001 - any capture failure falls back to the eager step
        if _is_out_of_memory(error):
            raise
        if not _graph_warned:
            warnings.warn(f"CUDA graph capture failed ({error}); training eagerly", stacklevel=2)
            _graph_warned = True
        torch.cuda.synchronize(device)
        return step, False
    return graph.replay, True


def _is_out_of_memory(error: BaseException) -> bool:
    """An OOM, also when a failed capture's clean-up raised over it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, torch.OutOfMemoryError):
            return True
        seen = seen.__context__
    return False
