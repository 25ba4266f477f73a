"""Many candidates trained as one network: every member's convolution runs in one grouped convolution.

A FusedBank lays G members side by side along the channel axis (groups = G), so one step trains all
of them with about the kernel launches of one model. Nothing is shared between members: each has its
own weights, batch-norm statistics, momentum buffers, data order, rotation angles, dropout masks,
learning rate, momentum and epoch. Each member's random numbers come from its own generators, drawn
exactly as TrainingRun draws them, so a member trains as `train(config, seed=seed)` would, up to the
order of floating-point sums.

Members share the batch size (one step is one batch for all) and the number of convs after the pool
(each takes 2 px off the map). The rest is made uniform without changing what a member computes:
- width: a narrower member is padded with zero channels; their gradients are exactly zero, so the
  padding stays zero and adds nothing;
- fewer convs before the pool: the member's features pass the bank's extra convs unchanged;
- no 1x1 transition: the member gets a frozen identity there;
- maxpool before global average pooling: chosen per member.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnist_arch.augment import rotate
from mnist_arch.config import ArchConfig, CandidateConfig
from mnist_arch.members import Member, group_members, padded_arch
from mnist_arch.model import layer_plan
from mnist_arch.trainer import (
    DIVERGENCE_CHECK,
    EVAL_BATCH,
    EVERY_EPOCH,
    WARMUP_STEPS,
    DeviceData,
    DivergedError,
    EpochStats,
    Evaluation,
    TrainResult,
    capture_step,
)

BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # nn.BatchNorm2d's defaults, which the models use
EVAL_ACTIVATIONS = EVAL_BATCH * 32  # images x first-block channels per evaluation batch (~200 MB)


@dataclass(frozen=True)
class _Part:
    """Where one tensor of a member sits in the bank: bank name, member state name, index."""

    bank: str
    member: str
    index: tuple[slice, ...]


class FusedBank:
    """G members with one bank key, trained together one batch at a time.

    `begin_epoch()`, `steps_per_epoch` x `step()`, `end_epoch()` is one epoch of every member, each at
    its own epoch number. On CUDA the bank has its own stream and, after WARMUP_STEPS eager steps, one
    captured graph for the whole step. `end_epoch` writes the state back into the members, so that a
    new bank can be formed from any of them at an epoch boundary.
    """

    def __init__(self, members: Sequence[Member], data: DeviceData, *, use_graph: bool | None = None) -> None:
        if not members or len({m.bank_key for m in members}) != 1:
            raise ValueError("a bank needs members with one bank key (batch size, convs after the pool)")
        self.members, self.data = list(members), data
        self.device = device = data.train_x.device
        archs = [m.config.arch for m in self.members]
        self.size = len(archs)
        self.batch = self.members[0].batch
        self.steps_per_epoch = len(data.train_y) // self.batch
        padded = padded_arch(archs)
        self.depth1, self.depth2 = len(padded.block1), len(padded.block2)
        self.width1, self.width2 = padded.block1[0], padded.block2[0]
        self.transition = padded.transition
        self.classes = archs[0].num_classes
        self.live = [True] * self.size  # False once a member diverged: its slot then computes zeros
        self.graph = False
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.current_stream(device))  # members' state is ready
        with self._on_stream():
            self._allocate()
            for slot, member in enumerate(self.members):
                self._pack(slot, member)
        self.step_index = 0
        self._graph_wanted = device.type == "cuda" if use_graph is None else use_graph
        self._replay: Callable[[], None] = self._step
        self._start = 0.0

    # ---- layout -------------------------------------------------------------------------------

    def _shapes(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """Name and shape of every bank parameter; the slot is the leading part of dim 0."""
        g, c1, c2 = self.size, self.width1, self.width2
        for i in range(self.depth1):
            yield f"b1.{i}.conv", (g * c1, 1 if i == 0 else c1, 3, 3)
            yield f"b1.{i}.bn_weight", (g * c1,)
            yield f"b1.{i}.bn_bias", (g * c1,)
        if self.transition:
            yield "t.conv", (g * c2, c1, 1, 1)
        for j in range(self.depth2):
            yield f"b2.{j}.conv", (g * c2, c1 if j == 0 and not self.transition else c2, 3, 3)
            yield f"b2.{j}.bn_weight", (g * c2,)
            yield f"b2.{j}.bn_bias", (g * c2,)
        yield "head.conv", (g * self.classes, c2, 1, 1)

    def _allocate(self) -> None:
        # All parameters are views of one flat tensor (and their gradients of another), so that the
        # SGD update of every member is a handful of kernels whatever the bank's size.
        shapes = dict(self._shapes())
        total = sum(math.prod(s) for s in shapes.values())
        device = self.device
        self.flat = torch.zeros(total, device=device)
        self.flat_grad = torch.zeros(total, device=device)
        self.flat_momentum = torch.zeros(total, device=device)
        self.params: dict[str, torch.Tensor] = {}
        self.momentum: dict[str, torch.Tensor] = {}
        slot_of = []
        offsets: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            param = self.flat[offset : offset + size].view(shape).requires_grad_()
            param.grad = self.flat_grad[offset : offset + size].view(shape)
            self.params[name] = param
            self.momentum[name] = self.flat_momentum[offset : offset + size].view(shape)
            slot_of.append(torch.arange(self.size, device=device).repeat_interleave(size // self.size))
            offsets[name] = (offset, size)
            offset += size
        self.slot_of = torch.cat(slot_of)  # member index of every flat element
        self.buffers: dict[str, torch.Tensor] = {}
        for block, depth, width in (("b1", self.depth1, self.width1), ("b2", self.depth2, self.width2)):
            for i in range(depth):
                self.params[f"{block}.{i}.bn_weight"].detach().fill_(1.0)  # padding: BN of zeros is 0
                self.buffers[f"{block}.{i}.running_mean"] = torch.zeros(self.size * width, device=device)
                self.buffers[f"{block}.{i}.running_var"] = torch.ones(self.size * width, device=device)
        self.tensors = {**self.params, **self.buffers}

        archs = [m.config.arch for m in self.members]
        recipes = [m.config.train for m in self.members]
        self.lr = torch.zeros(total, device=device)  # per element: its member's lr, set every epoch
        momentum = torch.tensor([r.momentum for r in recipes], device=device)
        self.momentum_factor = momentum[self.slot_of]
        self.grad_mask = None  # zero on the frozen identity transitions
        if self.transition and not all(a.transition for a in archs):
            self.grad_mask = torch.ones(total, device=device)
            start, size = offsets["t.conv"]
            frozen = torch.tensor([not a.transition for a in archs], device=device)
            self.grad_mask[start : start + size].view(self.size, -1)[frozen] = 0.0

        # Per-member choices, as masks over the bank's channels; None where no member differs.
        self.skip1 = [
            self._channel_mask(self.width1, [i >= len(a.block1) for a in archs], none_if_all_false=True)
            for i in range(self.depth1)
        ]
        self.pool = self._channel_mask(self.width2, [a.pool_before_gap for a in archs])
        self.rotate = self._row_mask([r.rotation > 0 for r in recipes])
        self._plan_dropout()

        n = len(self.data.train_y)
        self.order = torch.zeros(self.size, n, dtype=torch.long, device=device)
        self.angles = torch.zeros(self.size, n, device=device)
        self.batch_index = torch.zeros(self.size, self.batch, dtype=torch.long, device=device)
        self.batch_angle = torch.zeros(self.size, self.batch, device=device)
        self.loss_sum = torch.zeros(self.size, device=device)

    def _plan_dropout(self) -> None:
        """Each member's masks are drawn as its own run draws them: one (batch, its dropout channels)
        draw per step from its generator (`DropoutMasks`). The draws sit one after another in one flat
        buffer ending in a constant 1, and one gather lays them out as the bank's per-layer masks
        (padding, skipped layers and members without dropout read the 1)."""
        b = self.batch
        self.draws_of: list[tuple[slice, float, torch.Generator]] = []  # region, keep, generator
        keeps: list[torch.Tensor] = []
        sources: dict[tuple[int, str], tuple[int, int, int]] = {}  # (slot, layer) -> start, row, width
        offset = 0
        for slot, member in enumerate(self.members):
            arch = member.config.arch
            layers = list(_dropout_layers(arch))
            channels = sum(width for _, width in layers)
            if arch.dropout == 0 or channels == 0:
                continue  # nn.Dropout2d with p = 0 draws nothing
            column = 0
            for layer, width in layers:
                sources[slot, layer] = (offset + column, channels, width)
                column += width
            self.draws_of.append(
                (slice(offset, offset + b * channels), 1 - arch.dropout, member.dropout_generator)
            )
            keeps.append(torch.full((b * channels,), 1 - arch.dropout))
            offset += b * channels
        one = offset  # index of the constant 1
        self.draws = torch.ones(offset + 1, device=self.device)
        self.draw_keep = torch.cat([*keeps, torch.ones(1)]).to(self.device)
        self.mask_columns: dict[str, slice] = {}
        index_columns = []
        layers = sorted({layer for _, layer in sources}, key=_layer_order)
        for layer in layers:
            width = self.width1 if layer.startswith("b1") else self.width2
            index = torch.full((b, self.size * width), one, dtype=torch.long)
            for slot in range(self.size):
                if (slot, layer) in sources:
                    start, row, count = sources[slot, layer]
                    grid = torch.arange(b)[:, None] * row + torch.arange(count)[None, :] + start
                    index[:, slot * width : slot * width + count] = grid
            first = sum(column.shape[1] for column in index_columns)
            self.mask_columns[layer] = slice(first, first + self.size * width)
            index_columns.append(index)
        self.mask_index = torch.cat(index_columns, 1).to(self.device) if index_columns else None
        self.masks = torch.empty(0, device=self.device)

    def _draw_masks(self) -> None:
        if self.mask_index is None:
            return
        for region, keep, generator in self.draws_of:
            self.draws[region].bernoulli_(keep, generator=generator)
        self.draws.div_(self.draw_keep)
        self.masks = self.draws[self.mask_index]

    def _channel_mask(
        self, width: int, chosen: list[bool], *, none_if_all_false: bool = False
    ) -> torch.Tensor | bool | None:
        """(1, G*width, 1, 1) bool mask of the chosen members' channels; True/None when all/none."""
        if all(chosen) and not none_if_all_false:
            return True
        if not any(chosen):
            return None
        flags = torch.tensor(chosen, device=self.device).repeat_interleave(width)
        return flags.view(1, -1, 1, 1)

    def _row_mask(self, chosen: list[bool]) -> torch.Tensor | bool | None:
        """(G*batch, 1, 1, 1) mask of the chosen members' images; True/None when all/none."""
        if all(chosen):
            return True
        if not any(chosen):
            return None
        flags = torch.tensor(chosen, device=self.device).repeat_interleave(self.batch)
        return flags.view(-1, 1, 1, 1)

    def _parts(self, slot: int, arch: ArchConfig) -> Iterator[_Part]:
        plan = layer_plan(arch)
        n1, n2 = len(arch.block1), len(arch.block2)
        convs = [f"b1.{i}" for i in range(n1)] + (["t"] if arch.transition else [])
        convs += [f"b2.{j}" for j in range(n2)] + ["head"]
        norms = [f"b1.{i}" for i in range(n1)] + [f"b2.{j}" for j in range(n2)]
        conv_layers = [i for i, layer in enumerate(plan) if layer.kind == "Conv2d"]
        norm_layers = [i for i, layer in enumerate(plan) if layer.kind == "BatchNorm2d"]
        for name, index in zip(convs, conv_layers, strict=True):
            layer = plan[index]
            rows = self._rows(name, slot, layer.out_channels)
            yield _Part(f"{name}.conv", f"layers.{index}.weight", (rows, slice(0, layer.in_channels)))
        for name, index in zip(norms, norm_layers, strict=True):
            rows = (self._rows(name, slot, plan[index].out_channels),)
            yield _Part(f"{name}.bn_weight", f"layers.{index}.weight", rows)
            yield _Part(f"{name}.bn_bias", f"layers.{index}.bias", rows)
            yield _Part(f"{name}.running_mean", f"layers.{index}.running_mean", rows)
            yield _Part(f"{name}.running_var", f"layers.{index}.running_var", rows)

    def _rows(self, name: str, slot: int, count: int) -> slice:
        width = {"b1": self.width1, "head": self.classes}.get(name.split(".")[0], self.width2)
        return slice(slot * width, slot * width + count)

    @torch.no_grad()
    def _pack(self, slot: int, member: Member) -> None:
        state = dict(member.model.named_parameters()) | dict(member.model.named_buffers())
        for part in self._parts(slot, member.config.arch):
            self.tensors[part.bank][part.index].copy_(state[part.member])
            if part.bank in self.momentum:
                self.momentum[part.bank][part.index].copy_(member.momentum[part.member])
        arch = member.config.arch
        if self.transition and not arch.transition:
            width = arch.block1[-1]
            start = slot * self.width2
            identity = torch.eye(width, device=self.device).view(width, width, 1, 1)
            self.params["t.conv"][start : start + width, :width].copy_(identity)

    @torch.no_grad()
    def _unpack(self, slot: int, member: Member) -> None:
        state = dict(member.model.named_parameters()) | dict(member.model.named_buffers())
        for part in self._parts(slot, member.config.arch):
            state[part.member].copy_(self.tensors[part.bank][part.index])
            if part.bank in self.momentum:
                member.momentum[part.member].copy_(self.momentum[part.bank][part.index])
        for name, buffer in state.items():
            if name.endswith("num_batches_tracked"):
                buffer.add_(self.step_index)  # the steps since the bank was packed: this epoch's

    # ---- training -----------------------------------------------------------------------------

    @property
    def epoch_done(self) -> bool:
        return self.step_index >= self.steps_per_epoch

    def begin_epoch(self) -> None:
        """Every member's next epoch: its lr (StepLR from lr_decay_start), fresh order and angles."""
        n = len(self.data.train_y)
        with self._on_stream():
            lrs = []
            for slot, member in enumerate(self.members):
                member.epoch += 1
                recipe = member.config.train
                lrs.append(recipe.lr_at(member.epoch) if self.live[slot] else 0.0)
                generator = member.data_generator
                self.order[slot] = torch.randperm(n, generator=generator, device=self.device)
                angles = torch.rand(n, generator=generator, device=self.device) * 2 - 1
                angles *= recipe.rotation
                self.angles[slot] = angles
            self.lr.copy_(torch.tensor(lrs, device=self.device)[self.slot_of])
            self.loss_sum.zero_()
            self._sync()
        self.step_index = 0
        self._start = time.perf_counter()

    def step(self) -> list[int]:
        """One batch for every member; returns the slots of members found diverged at this step."""
        i, b = self.step_index, self.batch
        with self._on_stream():
            self.batch_index.copy_(self.order[:, i * b : (i + 1) * b])
            self.batch_angle.copy_(self.angles[:, i * b : (i + 1) * b])
            if self._graph_wanted and i == WARMUP_STEPS:
                generators = [generator for _, _, generator in self.draws_of]
                self._replay, self.graph = capture_step(self._step, self.device, self.stream, generators)
                self._graph_wanted = False
            self._replay()
            self.step_index += 1
            if self.step_index % DIVERGENCE_CHECK == 0:
                return self._find_diverged()
        return []

    def end_epoch(self, evaluation: Evaluation = EVERY_EPOCH) -> list[EpochStats | DivergedError | None]:
        """Each member's epoch stats (DivergedError where it diverged now, None where it had before).

        The stats are appended to each member's `result.history`, and the bank's state is written back
        into the members' models and momentum buffers. Accuracies are measured for the whole bank where
        `evaluation` asks for them at some member's epoch, and reported to the members it asks for.
        """
        with self._on_stream():
            self._sync()
            seconds = time.perf_counter() - self._start
            losses = (self.loss_sum / max(1, self.steps_per_epoch)).tolist()
            measured = time.perf_counter()
            want_val = [evaluation.val_at(member.epoch) for member in self.members]
            want_test = [evaluation.test_at(member.epoch) for member in self.members]
            val = self.evaluate(self.data.val_x, self.data.val_y) if any(want_val) else None
            test = self.evaluate(self.data.test_x, self.data.test_y) if any(want_test) else None
            eval_seconds = time.perf_counter() - measured
            outcomes: list[EpochStats | DivergedError | None] = []
            for slot, member in enumerate(self.members):
                self._unpack(slot, member)
                member.result.graph = member.result.graph or self.graph
                if not self.live[slot]:
                    outcomes.append(None)
                    continue
                if not math.isfinite(losses[slot]):
                    self._silence(slot)
                    outcomes.append(
                        DivergedError(f"training loss became {losses[slot]} in epoch {member.epoch}")
                    )
                    continue
                stats = EpochStats(
                    epoch=member.epoch,
                    lr=member.config.train.lr_at(member.epoch),
                    train_loss=losses[slot],
                    val_acc=val[slot] if val is not None and want_val[slot] else None,
                    test_acc=test[slot] if test is not None and want_test[slot] else None,
                    seconds=seconds,
                    eval_seconds=eval_seconds,
                )
                member.result.history.append(stats)
                outcomes.append(stats)
            self._sync()
        return outcomes

    @torch.inference_mode()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> list[float]:
        """Accuracy in [0, 1] of every member on `images`, with its running batch-norm statistics."""
        correct = torch.zeros(self.size, dtype=torch.long, device=self.device)
        chunk = max(1, EVAL_ACTIVATIONS // (self.size * self.width1))
        for start in range(0, len(labels), chunk):
            logits = self._forward(images[start : start + chunk], training=False, shared_input=True)
            correct += (logits.argmax(2) == labels[start : start + chunk, None]).sum(0)
        return [c / max(1, len(labels)) for c in correct.tolist()]

    def _step(self) -> None:
        g, b = self.size, self.batch
        self.flat_grad.zero_()
        self._draw_masks()
        x = self.data.train_x[self.batch_index.view(-1)]  # (G*B, 1, 28, 28): member after member
        if self.rotate is not None:
            turned = rotate(x, self.batch_angle.view(-1))
            x = turned if self.rotate is True else torch.where(self.rotate, turned, x)
        x = x.view(g, b, *x.shape[2:]).transpose(0, 1)  # (B, G, 28, 28): member m is input channel m
        logits = self._forward(x, training=True, shared_input=False)
        labels = self.data.train_y[self.batch_index].t()  # (B, G)
        losses = F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none").mean(0)
        losses.sum().backward()  # each member's gradient is that of its own mean loss
        # SGD with momentum (PyTorch's formula), per element with its member's momentum and lr.
        with torch.no_grad():
            grad = self.flat_grad if self.grad_mask is None else self.flat_grad * self.grad_mask
            self.flat_momentum.mul_(self.momentum_factor).add_(grad)
            self.flat.sub_(self.flat_momentum * self.lr)
            self.loss_sum.add_(losses.detach())

    def _forward(self, x: torch.Tensor, *, training: bool, shared_input: bool) -> torch.Tensor:
        """Logits (N, G, classes). `shared_input`: x is (N, 1, H, W), the same images for every member."""
        g, t = self.size, self.tensors
        h = x
        for i in range(self.depth1):
            groups = 1 if i == 0 and shared_input else g
            z = self._norm(F.conv2d(h, t[f"b1.{i}.conv"], padding=1, groups=groups), f"b1.{i}", training)
            skip = self.skip1[i]
            h = z if skip is None else torch.where(skip, h, z)
        h = F.max_pool2d(h, 2)
        if self.transition:
            h = F.conv2d(h, t["t.conv"], groups=g)
        for j in range(self.depth2):
            h = self._norm(F.conv2d(h, t[f"b2.{j}.conv"], groups=g), f"b2.{j}", training)
        plain = None if self.pool is True else F.adaptive_avg_pool2d(h, 1)
        pooled = None if self.pool is None else F.adaptive_avg_pool2d(F.max_pool2d(h, 2), 1)
        if pooled is None or plain is None:
            h = pooled if plain is None else plain
        else:
            h = torch.where(self.pool, pooled, plain)
        logits = F.conv2d(h, t["head.conv"], groups=g)
        return logits.view(len(x), g, self.classes)

    def _norm(self, z: torch.Tensor, layer: str, training: bool) -> torch.Tensor:
        """ReLU -> BatchNorm2d -> Dropout2d, as in each member's own model."""
        t = self.tensors
        z = F.relu(z)
        z = F.batch_norm(
            z,
            t[f"{layer}.running_mean"],
            t[f"{layer}.running_var"],
            t[f"{layer}.bn_weight"],
            t[f"{layer}.bn_bias"],
            training=training,
            momentum=BN_MOMENTUM,
            eps=BN_EPS,
        )
        if training and layer in self.mask_columns:
            z = z * self.masks[:, self.mask_columns[layer], None, None]
        return z

    def _find_diverged(self) -> list[int]:
        finite = torch.isfinite(self.loss_sum).tolist()
        found = [slot for slot, ok in enumerate(finite) if not ok and self.live[slot]]
        for slot in found:
            self._silence(slot)
        return found

    @torch.no_grad()
    def _silence(self, slot: int) -> None:
        """A diverged member's slot is zeroed and frozen, so its NaNs cannot reach anything else."""
        self.live[slot] = False
        chosen = self.slot_of == slot
        for flat in (self.flat, self.flat_momentum, self.lr):
            flat[chosen] = 0.0
        for name, buffer in self.buffers.items():
            width = buffer.numel() // self.size
            buffer[slot * width : (slot + 1) * width] = 1.0 if name.endswith("running_var") else 0.0
        self.loss_sum[slot] = 0.0

    def _on_stream(self) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def _sync(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()


def _dropout_layers(arch: ArchConfig) -> Iterator[tuple[str, int]]:
    """(bank layer name, channels) of every Dropout2d in the member's model, in forward order."""
    for i, width in enumerate(arch.block1):
        yield f"b1.{i}", width
    for j, width in enumerate(arch.block2):
        if arch.last_dropout or j < len(arch.block2) - 1:
            yield f"b2.{j}", width


def _layer_order(layer: str) -> tuple[int, int]:
    block, index = layer.split(".")
    return (block == "b2", int(index))


def train_fused(
    jobs: Sequence[tuple[CandidateConfig, int]],
    data: DeviceData,
    *,
    epochs: int,
    max_bank: int = 64,
    use_graph: bool | None = None,
) -> list[TrainResult]:
    """Train each (config, seed) for `epochs`, in fused banks; the results come in the jobs' order.

    A diverged member stops there; its history ends with the last finite epoch.
    """
    members = [Member.start(config, data, seed=seed) for config, seed in jobs]
    for bank_members in group_members(members, max_bank):
        bank = FusedBank(bank_members, data, use_graph=use_graph)
        for _ in range(epochs):
            bank.begin_epoch()
            while not bank.epoch_done:
                bank.step()
            bank.end_epoch()
            if not any(bank.live):
                break
    return [member.result for member in members]
