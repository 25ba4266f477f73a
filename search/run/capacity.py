"""How many trials may be in flight in one process: the request, capped on CUDA by free memory.

On CUDA the first trial trains alone for one epoch; its peak allocation is the measured bytes per trial,
and the cap becomes what MEMORY_SHARE of the free memory holds. Out of memory lowers the cap.
"""

from __future__ import annotations

import torch

AUTO_CONCURRENCY = 32  # trials in flight on CUDA when not given; throughput is flat from 16 to 64
# With the fused engine: banks are split by batch size and depth after the pool, so more trials than
# the separate engine's 32 are needed to fill them.
FUSED_AUTO_CONCURRENCY = 64
MEMORY_SHARE = 0.5  # of the free device memory; the widest models of a space need about twice the first's


def trials_in_flight(concurrency: int | None, engine: str, device: torch.device) -> int:
    """Trials one process keeps in flight (before memory caps it): `concurrency` when given, else the
    automatic number for the engine ("separate" | "fused"), 1 on the CPU."""
    if concurrency is not None:
        return concurrency
    if device.type != "cuda":
        return 1
    return FUSED_AUTO_CONCURRENCY if engine == "fused" else AUTO_CONCURRENCY


class Capacity:
    """The trials in flight allowed now: `requested`, until memory says otherwise."""

    def __init__(self, device: torch.device, requested: int) -> None:
        self.device = device
        self.requested = requested
        self.bytes_per_trial: int | None = None
        self.cap = requested
        if device.type == "cuda":
            self.cap = 1  # until the first trial is measured
            torch.cuda.reset_peak_memory_stats(device)
            self._base = torch.cuda.memory_allocated(device)

    def allows(self, in_flight: int) -> bool:
        return in_flight < self.cap

    @property
    def measured(self) -> bool:
        return self.device.type != "cuda" or self.bytes_per_trial is not None

    def measure(self) -> None:
        """After the first trial's first epoch, while it was the only one in flight."""
        if self.measured:
            return
        self.bytes_per_trial = max(1, torch.cuda.max_memory_allocated(self.device) - self._base)
        self.cap = cap_for_memory(self.requested, self.bytes_per_trial, self.device, in_flight=1)

    def out_of_memory(self, still_in_flight: int) -> None:
        """A trial ran out of memory: at most the trials still in flight from now on, at least one."""
        self.cap = max(1, min(self.cap, still_in_flight))
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # give the failed trials' memory back before the next ones


def cap_for_memory(requested: int, bytes_per_trial: int, device: torch.device, *, in_flight: int) -> int:
    """`requested`, lowered so that the trials beyond the `in_flight` ones fit the free memory."""
    # Only memory the driver reports free: cached blocks may sit in graphs' private pools.
    free, _ = torch.cuda.mem_get_info(device)
    more = int(MEMORY_SHARE * free) // bytes_per_trial
    return max(1, min(requested, in_flight + more))
