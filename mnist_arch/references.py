"""Named reference designs: the seed's three iterations and the strongest public small MNIST models.

Each reference is a config of the model family with its recipe, the figure its author published (and
what kind of figure it is), where it comes from, and every detail the family does not express exactly.
All public figures are one run each, on the official 10,000 test images, trained on all 60,000 training
images; mnist-arch trains on a 55,000-image pool and keeps 5,000 for validation.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_arch.config import ArchConfig, CandidateConfig, Stage, TrainConfig
from mnist_arch.iterations import ITERATIONS


@dataclass(frozen=True)
class Reference:
    """A named design: its config, its own epoch count and its published result.

    published_final / published_best: test accuracy in [0, 1] at the last epoch and at the best one
    (None where the source does not give it); best_epoch is 1-based. differences lists what the model
    family or the trainer does not copy exactly; empty when the reference is exact.
    """

    name: str
    config: CandidateConfig
    epochs: int
    published_params: int
    published_final: float | None
    published_best: float
    best_epoch: int
    source: str
    differences: tuple[str, ...] = ()

    @property
    def published_note(self) -> str:
        final = f", final {100 * self.published_final:.2f} %" if self.published_final is not None else ""
        return f"best {100 * self.published_best:.2f} % (epoch {self.best_epoch} of {self.epochs}){final}"

    @property
    def is_iteration(self) -> bool:
        return self.name.startswith("iteration-")


_SEED_WRITE_UP = "the seed write-up's hand-designed iterations (layer tables in ../shared/seed/)"

_ITERATION_EPOCHS = {"iteration-1": 20, "iteration-2": 14, "iteration-3": 14}
_ITERATION_BEST_EPOCH = {"iteration-1": 20, "iteration-2": 12, "iteration-3": 11}

_DATA_DIFFERENCE = "trains on 60,000 images without a validation split (here: the 55,000-image pool)"

PUBLIC: tuple[Reference, ...] = (
    Reference(
        "woolly-3762",
        CandidateConfig(
            ArchConfig(
                stages=(
                    Stage((4, 4, 4), padded=True, pool=True),
                    Stage((8, 8, 8), padded=True, pool=True),
                    Stage((8, 8, 8), padded=True, pool=False),
                ),
                order="bn_relu",
                dropout=0.01,
                dropout_at="pool",
                conv_bias=True,
                head_bias=True,
            ),
            TrainConfig(
                optimizer="sgd",
                lr=0.1,
                # SGD(lr=0.05) without momentum, but the OneCycleLR built on it (never stepped) sets 0.95
                momentum=0.95,
                batch_size=32,
                lr_knots=((0, 0.5), (2, 1.0), (8, 0.1), (12, 0.05), (15, 0.0)),
                init="xavier",
                rotation=7.0,
                translate=0.09,
                scale=0.09,
                affine_p=0.5,
                brightness=0.2,
                contrast=0.2,
                color_p=0.5,
            ),
        ),
        epochs=15,
        published_params=3762,
        published_final=0.9952,
        published_best=0.9952,
        best_epoch=15,
        source="adilsammar/woolly-of-cv, assets/mnist/notebook/MNIST_ALBUMENTATION_3762_99.52.ipynb "
        "(code in assets/mnist/mnist/ as first committed)",
        differences=(
            "element-wise Dropout after the two maxpools; here channel-wise Dropout2d (rate 0.01)",
            "ShiftScaleRotate reflects the image at the border; here the uncovered border is black",
            "the lr changes one step after each epoch boundary; here at the boundary",
            _DATA_DIFFERENCE,
        ),
    ),
    Reference(
        "woolly-4838",
        CandidateConfig(
            ArchConfig(
                stages=(
                    Stage((4, 4), padded=True, pool=True),
                    Stage((8, 8), padded=True, pool=True),
                    Stage((16, 16), padded=True, pool=False),
                ),
                order="relu_bn",
                dropout=0.01,
                dropout_at="pool",
                conv_bias=True,
                head_bias=True,
            ),
            TrainConfig(
                optimizer="adam",
                lr=0.01,
                momentum=0.95,  # Adam's beta1, set to 0.95 by a OneCycleLR built and discarded
                batch_size=64,
                lr_knots=((0, 0.1), (2, 1.0), (5, 0.02), (12, 0.0)),
                init="xavier",
                rotation=5.0,
                translate=0.04,
                scale=0.04,
            ),
        ),
        epochs=12,
        published_params=4838,
        published_final=0.9941,
        published_best=0.9942,
        best_epoch=8,
        source="adilsammar/woolly-of-cv, assets/mnist/notebook/MNIST_4838_9942.ipynb",
        differences=(
            "the head's 1x1 conv runs before GAP; here after it (the same function: both are linear)",
            "a third element-wise Dropout(0.01) after the last conv; here Dropout2d after the two pools only",
            "RandomResizedCrop(scale 0.85-1, ratio 3/4-4/3) is approximated by zoom and shift of +/-4 %",
            _DATA_DIFFERENCE,
        ),
    ),
    Reference(
        "nimmagadda-6188",
        CandidateConfig(
            ArchConfig(
                stages=(
                    Stage((8, 10), padded=False, pool=True),
                    Stage((12, 16), padded=False, pool=True),
                    Stage((16,), padded=False, pool=False),
                ),
                order="bn_relu",
                dropout=0.008,
                dropout_at="pool",
            ),
            TrainConfig(
                optimizer="adam",
                lr=0.003,
                momentum=0.9,
                weight_decay=5e-5,
                batch_size=128,
                # OneCycleLR(max_lr 0.003, pct_start 0.2, cos, div 25, final_div 1000) as a 5-point line
                lr_knots=((0, 0.04), (3, 1.0), (9, 0.5), (12, 0.15), (15, 0.0)),
                rotation=5.0,
                translate=0.05,
                scale=0.02,
            ),
        ),
        epochs=15,
        published_params=6188,
        published_final=0.9944,
        published_best=0.9954,
        best_epoch=12,
        source="nagalakshmi-nimmagadda/MNIST-CNN-COLAB, MNIST_Model3_Development.ipynb (README.md)",
        differences=(
            "OneCycleLR moves the lr every step on cosines and cycles Adam's beta1 0.95-0.85; here the lr "
            "follows a 5-point line per epoch (0.04, 1 at epoch 3, 0.5 at 9, 0.15 at 12, 0 at 15) and beta1 "
            "stays 0.9",
            "element-wise Dropout(0.008) after the pools and on the pooled 16 features; here Dropout2d "
            "after the pools only",
            "the head is a Linear layer without bias; here the same map as a 1x1 conv",
            _DATA_DIFFERENCE,
        ),
    ),
    Reference(
        "era-7918",
        CandidateConfig(
            ArchConfig(
                stages=(
                    Stage((10, 10, 10), padded=True, pool=True),
                    Stage((16, 16, 8, 8), padded=False, pool=False),
                    Stage((8, 16), padded=False, pool=False, kernel=1),
                ),
                order="bn_relu",
                dropout=0.0,
            ),
            TrainConfig(
                optimizer="adam",
                lr=0.005,
                momentum=0.9,
                batch_size=64,
                lr_step=8,
                lr_gamma=0.1,
                lr_decay_start=1,
                rotation=7.0,
            ),
        ),
        epochs=15,
        published_params=7918,
        published_final=0.9950,
        published_best=0.9952,
        best_epoch=11,
        source="snehanshu-raj/ERA, assignment_6/model_3.py (log in assignment_6/Readme.md)",
        differences=(_DATA_DIFFERENCE,),
    ),
)

REFERENCES: tuple[Reference, ...] = (
    *(
        Reference(
            it.name,
            it.config,
            epochs=_ITERATION_EPOCHS[it.name],
            published_params={"iteration-3": 7560}.get(it.name, 8088),
            published_final=None,
            published_best=it.published_test_acc,
            best_epoch=_ITERATION_BEST_EPOCH[it.name],
            source=_SEED_WRITE_UP,
            differences=("recipe details the write-up does not state use the exercise's usual choices",),
        )
        for it in ITERATIONS
    ),
    *PUBLIC,
)

REFERENCE_NAMES = tuple(ref.name for ref in REFERENCES)


def get_reference(name: str) -> Reference:
    for reference in REFERENCES:
        if reference.name == name:
            return reference
    raise KeyError(f"unknown reference {name!r} (known: {', '.join(REFERENCE_NAMES)})")
