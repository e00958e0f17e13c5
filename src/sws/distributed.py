"""Processes and devices: one process, or many under ``torchrun`` (NCCL on GPUs, gloo on CPUs).

``torchrun --nproc_per_node=N -m sws train ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
torchrun's multi-node flags (``--nnodes``, ``--node_rank``, ``--rdzv_endpoint``) work unchanged.
Only rank 0 writes files and logs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from sws.errors import ConfigError


@dataclass(frozen=True)
class Processes:
    """Where this process runs and who its peers are."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # this call joined the process group, so it leaves it too

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def print(self, *values: Any, **kwargs: Any) -> None:
        """``print`` on rank 0 only: one process speaks for all."""
        if self.is_main:
            print(*values, **kwargs)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when there is a GPU, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda but no GPU is visible; use --device cpu (or auto)")
        return torch.device("cuda", local_rank if name == "cuda" else int(name.split(":")[1]))
    if name not in ("cpu", "mps"):
        raise ConfigError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def init_processes(device_name: str) -> Processes:
    """Join the process group when launched by torchrun, else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    joins = world_size > 1 and not dist.is_initialized()
    if joins:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return Processes(device, rank, local_rank, world_size, owns_group=joins)


def shutdown(processes: Processes) -> None:
    """Leave the process group if this run joined it (a pipeline keeps one group for all its steps)."""
    if processes.owns_group and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def run_processes(device_name: str) -> Iterator[Processes]:
    """Join the process group (under torchrun) for the duration of a command, and leave it after."""
    processes = init_processes(device_name)
    try:
        yield processes
    finally:
        shutdown(processes)


def _collective_device(processes: Processes) -> torch.device:
    return processes.device if processes.device.type == "cuda" else torch.device("cpu")


def all_reduce_sum(values: list[float] | torch.Tensor, processes: Processes) -> list[float]:
    """Sum numbers (floats, or a tensor of them on any device) over all processes; the one host
    sync of the caller."""
    tensor = torch.as_tensor(values, dtype=torch.float64)
    if processes.distributed:
        tensor = tensor.to(_collective_device(processes))
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_reduce_min(value: torch.Tensor, processes: Processes) -> torch.Tensor:
    """The element-wise minimum over all processes (the tensor itself when alone)."""
    if not processes.distributed:
        return value
    tensor = value.to(_collective_device(processes), copy=True)  # the caller's tensor stays its own
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def gather_objects(value: Any, processes: Processes) -> list[Any]:
    """Every process's ``value``, in rank order (``[value]`` when alone)."""
    if not processes.distributed:
        return [value]
    values: list[Any] = [None] * processes.world_size
    dist.all_gather_object(values, value)
    return values


def broadcast_module(module: nn.Module, processes: Processes) -> None:
    """Give every process rank 0's parameters and buffers (what DDP does when it wraps a model; done
    earlier where a copy, such as the EMA, is made before wrapping)."""
    if not processes.distributed:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()
