"""The one architecture notation, long and short; free of torch so that tables render without it."""

from __future__ import annotations

from mnist_arch.config import ArchConfig


def describe(arch: ArchConfig, *, short: bool = False) -> str:
    """The architecture in one line, the one notation every table uses.

    Long: '8x3 | MP | 1x1 | 12x5 | MP | GAP (drop 0.05)'; short (a dozen characters for 80-column
    tables): '8×3 P T 12×5 P'. A stage after the first is unpadded unless marked 'p' (the seed's
    shape); an unpadded first stage is marked 'u'. The long form adds the norm order, conv biases and
    the dropout placement when they are not the seed's.
    """
    times, pool, transition, sep = ("×", "P", "T", " ") if short else ("x", "MP", "1x1", " | ")

    def widths(block: tuple[int, ...]) -> str:
        if len(set(block)) == 1:
            return f"{block[0]}{times}{len(block)}" if len(block) > 1 or not short else str(block[0])
        return "-".join(str(c) for c in block)

    parts: list[str] = []
    for number, stage in enumerate(arch.stages, start=1):
        if stage.transition:
            parts.append(transition)
        if stage.kernel == 1:
            parts.append(("1×1:" if short else "1x1 ") + widths(stage.widths))
        else:
            mark = ("" if stage.padded else "u") if number == 1 else ("p" if stage.padded else "")
            parts.append(widths(stage.widths) + mark)
        if stage.pool:
            parts.append(pool)
    if short:
        return sep.join(parts)
    notes = [f"drop {arch.dropout:.3g}" + (" at pools" if arch.dropout_at == "pool" else "")]
    if arch.order == "bn_relu":
        notes.append("BN-ReLU")
    if arch.conv_bias:
        notes.append("bias")
    return sep.join([*parts, "GAP"]) + f" ({', '.join(notes)})"
