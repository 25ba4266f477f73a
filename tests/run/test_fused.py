"""The fused engine: members of a bank train exactly as alone (float64 on the CPU, where summation
order is the only difference left), nothing leaks between members, and a fused search counts, prunes,
refills and fails like the other loops."""

from __future__ import annotations

from tests.helpers import REPO  # isort: skip

from contextlib import contextmanager

import optuna
import pytest
import torch
from optuna.trial import TrialState

from mnist_arch import ITERATIONS, DeviceData, DivergedError, TrainingRun, load_mnist, train
from mnist_arch.config import ArchConfig, CandidateConfig, TrainConfig
from mnist_arch.errors import UsageError
from mnist_arch.fused import FusedBank, train_fused
from mnist_arch.members import Member, group_members, padded_arch
from mnist_arch.model import conv_macs
from search.run.fused import FusedEngine
from search.run.pipeline import resolve_engine
from search.run.scheduler import run_search
from search.run.separate import SeparateEngine
from search.run.settings import SearchSettings
from search.run.trial import TrialContext
from search.study.trials import trained_count
from space.space import SearchSpace
from tests.helpers import run_subprocess
from tests.search_procs import SMALL_SPACE, small_space

ITERATION_3 = ITERATIONS[2].config


@contextmanager
def float64():
    """Models, data and arithmetic in float64: fused and alone then differ only by rounding (~1e-14)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def tiny_data(mnist_dir, *, images: int, double: bool, device: str = "cpu") -> DeviceData:
    """`images` training images; validation and test cut to 500 images to keep epochs cheap."""
    data = DeviceData.from_mnist(load_mnist(mnist_dir, subset=images), torch.device(device))
    data.val_x, data.val_y = data.val_x[:500], data.val_y[:500]
    data.test_x, data.test_y = data.test_x[:500], data.test_y[:500]
    if double:
        for name in ("train_x", "val_x", "test_x"):
            setattr(data, name, getattr(data, name).double())
    return data


def candidate(recipe: TrainConfig | None = None, **arch: object) -> CandidateConfig:
    """Iteration 3 with batch 32 (unless `recipe` says otherwise) and the given architecture changes."""
    seed = ITERATION_3.arch
    shape = {"block1": seed.block1, "block2": seed.block2, "transition": seed.transition}
    shape.update(pool_before_gap=seed.pool_before_gap)
    scalars = {"dropout": seed.dropout, "last_dropout": seed.last_dropout}
    for name in list(arch):
        (scalars if name in scalars else shape)[name] = arch.pop(name)
    return CandidateConfig(ArchConfig.two_blocks(**shape, **scalars), recipe or TrainConfig(batch_size=32))


# One bank key (batch 32, five convs after the pool); everything else differs between members.
MIXED = [
    (candidate(), 0),
    (candidate(), 0),  # a copy: same seed, same result
    (candidate(block1=(4, 4), transition=True, block2=(10,) * 5, pool_before_gap=False), 1),
    (candidate(block1=(12, 12, 12, 12), dropout=0.0, last_dropout=False), 2),
    (
        candidate(
            TrainConfig(batch_size=32, lr=0.1, momentum=0.8, rotation=0.0, lr_decay_start=1, lr_step=1)
        ),
        3,
    ),
    (candidate(block1=(6, 6, 6), block2=(6, 8, 10, 12, 14), dropout=0.12), 4),
]


def curve(history) -> list[tuple[int, float, float, float]]:
    return [(e.epoch, e.lr, e.val_acc, e.test_acc) for e in history]


def losses(history) -> list[float]:
    return [e.train_loss for e in history]


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_bank_members_train_exactly_as_alone(mnist_dir) -> None:
    with float64():
        data = tiny_data(mnist_dir, images=256, double=True)
        fused = train_fused(MIXED, data, epochs=2)
        alone = [train(config, data, epochs=2, seed=seed) for config, seed in MIXED]
    for (config, _), together, single in zip(MIXED, fused, alone, strict=True):
        assert curve(together.history) == curve(single.history), config
        # the epoch's mean loss is summed in another order: equal to the last bits
        assert losses(together.history) == pytest.approx(losses(single.history), rel=1e-12, abs=0)
        single_state = state(single.model)
        for name, tensor in state(together.model).items():
            # any real difference (a shared mask, a wrong lr or slice) is many orders above this
            torch.testing.assert_close(tensor, single_state[name], rtol=0, atol=1e-9, msg=name)
    last = [result.history[-1].train_loss for result in fused]
    assert last[0] == last[1] and len(set(last[1:])) == len(last) - 1  # members differ


def test_float32_bank_step_matches_alone(mnist_dir) -> None:
    """In float32 rounding differences grow fast in early training (batch-norm over small maps), so
    the float32 check is one step: every member's weights after it match its own run's."""
    data = tiny_data(mnist_dir, images=256, double=False)
    jobs = [MIXED[0], MIXED[2], MIXED[3]]
    runs = [TrainingRun(config, data, seed=seed) for config, seed in jobs]
    members = [Member.start(config, data, seed=seed) for config, seed in jobs]
    bank = FusedBank(members, data)
    bank.begin_epoch()
    bank.step()
    bank.end_epoch()  # writes the state back into the members
    for run, member in zip(runs, members, strict=True):
        run.begin_epoch(1)
        run.step()
        expected = state(run.model)
        for name, tensor in state(member.model).items():
            if not name.endswith("num_batches_tracked"):
                torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-5, msg=name)


def test_a_diverging_member_leaves_the_others_untouched(mnist_dir) -> None:
    with float64():
        data = tiny_data(mnist_dir, images=256, double=True)
        members = [Member.start(config, data, seed=seed) for config, seed in [MIXED[0], MIXED[2]]]
        with torch.no_grad():
            members[1].model.layers[0].weight[0, 0, 1, 1] = float("nan")  # as after an overflow
        bank = FusedBank(members, data)
        bank.begin_epoch()
        while not bank.epoch_done:
            bank.step()
        healthy, diverged = bank.end_epoch()
        alone = train(MIXED[0][0], data, epochs=1, seed=0)
    assert isinstance(diverged, DivergedError) and bank.live == [True, False]
    assert curve([healthy]) == curve(alone.history)
    assert losses([healthy]) == pytest.approx(losses(alone.history), rel=1e-12, abs=0)
    assert all(torch.isfinite(t).all() for t in bank.tensors.values())  # the NaNs were cleared


def test_members_are_grouped_by_batch_size_and_depth_after_the_pool(mnist_dir) -> None:
    data = tiny_data(mnist_dir, images=128, double=False)
    configs = [candidate(), candidate(block2=(12,) * 4), candidate(TrainConfig(batch_size=64)), candidate()]
    members = [Member.start(config, data, seed=0) for config in configs]
    banks = group_members(members, max_size=8)
    assert sorted(len(bank) for bank in banks) == [1, 1, 2]
    assert all(len({m.bank_key for m in bank}) == 1 for bank in banks)
    assert [len(bank) for bank in group_members(members[:1] * 5, max_size=2)] == [2, 2, 1]
    with pytest.raises(ValueError, match="one bank key"):
        FusedBank(members[:2], data)


def test_banks_split_where_padding_would_cost_too_much(mnist_dir) -> None:
    data = tiny_data(mnist_dir, images=128, double=False)
    narrow, near, wide = (
        candidate(),
        candidate(block1=(9, 9, 9)),
        candidate(block1=(16, 16, 16), block2=(20,) * 5),
    )
    members = [Member.start(config, data, seed=0) for config in (wide, narrow, near)]
    padded = padded_arch([narrow.arch, wide.arch])
    assert (padded.block1, padded.block2) == ((16, 16, 16), (20,) * 5)
    # 8 and 9 wide pad to 9 at a small cost; 16 wide would cost the narrow ones several times their own
    assert conv_macs(padded_arch([narrow.arch, near.arch])) * 2 < 1.5 * (
        conv_macs(narrow.arch) + conv_macs(near.arch)
    )
    banks = group_members(members, max_size=8, max_padding=1.5)
    assert [[m.config for m in bank] for bank in banks] == [[narrow, near], [wide]]
    assert len(group_members(members, max_size=8, max_padding=float("inf"))) == 1


# ---- the fused search loop -----------------------------------------------------------------------


def new_study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=0, constant_liar=True)
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)


def make_ctx(data: DeviceData, epochs: int, space: SearchSpace | None = None) -> TrialContext:
    return TrialContext(space or SearchSpace.load(None), data, epochs, 8000, "val", seed=0)


def test_fused_search_gives_the_sequential_values(mnist_dir) -> None:
    """Five seeds of iteration 3 and two other queued trials, two epochs: fused K=4 gives each trial's
    value of the one-at-a-time loop (float64, so that rounding cannot flip an image)."""
    space = SearchSpace.load(None)
    others = [
        candidate(TrainConfig(batch_size=64), block1=(4, 4), transition=True, block2=(10,) * 5),
        candidate(TrainConfig(batch_size=64, lr=0.1, rotation=0.0)),
    ]
    values = []
    with float64():
        data = tiny_data(mnist_dir, images=256, double=True)
        for fused in (False, True):
            study = new_study(optuna.pruners.NopPruner())
            for _ in range(5):
                study.enqueue_trial({}, user_attrs={"baseline": "iteration-3"})
            for config in others:
                study.enqueue_trial(space.params_for(config))
            ctx = make_ctx(data, epochs=2, space=space)
            if fused:
                settings = SearchSettings(trials=7, concurrency=4, epochs=2)
                stats = run_search(study, ctx, FusedEngine(data, max_bank=4), settings)
                assert stats.max_in_flight == 4 and stats.model_epochs == 14
                assert 1 < stats.member_steps / stats.bank_steps <= 4  # trials shared banks
            else:
                run_search(
                    study, ctx, SeparateEngine(data), SearchSettings(trials=7, concurrency=1, epochs=2)
                )
            values.append([(t.state, t.value) for t in study.trials])
    sequential, fused = values
    assert len(sequential) == 7 and len({value for _, value in sequential}) > 1
    assert fused == sequential


BATCH_SPACE = small_space(
    architecture={"block1_width": "6", "block2_width": "8"}, optimizer={"batch_size": "{choices = [32, 64]}"}
)


class _OutOfMemoryBank(FusedBank):
    """The first bank of batch-64 trials runs out of device memory at its second step."""

    raised = False

    def step(self) -> list[int]:
        if self.batch == 64 and self.step_index == 1 and not _OutOfMemoryBank.raised:
            _OutOfMemoryBank.raised = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return super().step()


class _OutOfMemoryEngine(FusedEngine):
    def new_bank(self, members):
        return _OutOfMemoryBank(members, self.data)


def test_out_of_memory_fails_its_bank_and_the_search_goes_on(mnist_dir, tmp_path) -> None:
    data = tiny_data(mnist_dir, images=256, double=False)
    path = tmp_path / "space.toml"
    path.write_text(BATCH_SPACE)
    study = new_study(optuna.pruners.NopPruner())
    for batch in (32, 64, 32):
        study.enqueue_trial({"batch_size": batch})
    ctx = make_ctx(data, epochs=1, space=SearchSpace.load(path))
    settings = SearchSettings(trials=3, concurrency=3, epochs=1)
    stats = run_search(study, ctx, _OutOfMemoryEngine(data, max_bank=3), settings)
    first_three = [t.state for t in study.trials[:3]]
    assert first_three == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["fail_reason"] == "out of memory"
    assert stats.trained == 3 and trained_count(study) == 3


def test_auto_engine_fuses_on_cuda_when_every_trial_has_one_shape() -> None:
    default, recipe = SearchSpace.load(None), SearchSpace.load(REPO / "space" / "recipe.toml")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_engine("auto", recipe, cuda) == "fused"
    assert resolve_engine("auto", default, cuda) == "separate"
    assert resolve_engine("auto", recipe, cpu) == "separate"
    assert resolve_engine("fused", recipe, cpu) == "fused"
    with pytest.raises(UsageError, match="--engine fused trains the seed's layout"):
        resolve_engine("fused", default, cpu)  # Adam, one-cycle, three stages: the separate engine's
    assert resolve_engine("separate", recipe, cuda) == "separate"


def test_search_cli_with_the_fused_engine(tmp_path, mnist_dir) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = tmp_path / "seed_family.toml"
    space.write_text(SMALL_SPACE)  # the seed's layouts and recipe family: what a fused bank trains
    done = run_subprocess(
        *("search", "--device", "cpu", "--storage", url, "--data", str(mnist_dir), "--subset", "300"),
        *("--space", str(space)),
        *("--engine", "fused", "--concurrency", "3", "--epochs", "2", "--trials", "4", "--confirm-top", "0"),
    )
    assert done.returncode == 0, done.stderr
    assert "model-epochs/s, up to 3 trials in flight" in done.stdout
    words = " ".join(done.stdout.split())  # the console wraps long lines
    assert "trials per bank" in words and "(fused engine)" in words
    study = optuna.load_study(study_name="mnist-arch", storage=url)
    assert trained_count(study) == 4
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(len(t.user_attrs["val_curve"]) == 2 for t in complete)
