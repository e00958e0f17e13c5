"""What training costs: floating-point operations counted by PyTorch's FLOP counter.

A forward pass is counted once per model on one image (matrix multiplies, convolutions and
attention, as ``torch.utils.flop_counter`` counts them, with the CPU attention kernel added); a
training step is taken as three forward passes (forward plus a backward twice as costly), and a
teacher adds one forward pass per image. Peak memory is read per epoch (CUDA allocator, or the
resident high-water mark on Linux).
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry, register_flop_formula, sdpa_flop_count

_CPU_ATTENTION = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
if _CPU_ATTENTION not in flop_registry:
    # PyTorch counts fused attention on CUDA but not its CPU kernel; without this a CPU count
    # would leave out QK^T and AV (about 8% of a 224 px ViT-S forward pass)
    @register_flop_formula(_CPU_ATTENTION)
    def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
        return sdpa_flop_count(query_shape, key_shape, value_shape)


@torch.no_grad()
def forward_flops(model: nn.Module | None, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of ``model`` on an input of ``input_shape`` (batch size 1)."""
    if model is None:
        return 0
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(input_shape, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def training_flops(forward_per_image: int, images: int, teacher_forward_per_image: int = 0) -> int:
    """Training FLOPs: ~3 forward passes per image for the student, one for a teacher."""
    return images * (3 * forward_per_image + teacher_forward_per_image)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA allocator peak, or the process's resident high-water
    mark on Linux, which writing 5 to /proc/self/clear_refs resets)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # not Linux: the peak then covers the whole process


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since ``reset_peak_memory``: CUDA allocated bytes, else resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource
    import sys

    # ru_maxrss is kilobytes on Linux, bytes on macOS, and survives exec from the parent process
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes a new allocation can have on ``device`` now: a GPU's free memory, else the host's
    available memory (Linux's ``MemAvailable``: free memory plus the caches it can drop; elsewhere
    the free pages, or 4 GiB where the platform does not say).

    >>> available_memory("cpu") > 0
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return 4 * 2**30
