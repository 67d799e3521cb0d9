"""Process set-up shared by every stage that runs torch: device, CPU threads, seed, and the
process group under ``torchrun``."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)``, (0, 1) outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launch_rank() -> int:
    """This process's rank as ``torchrun`` announces it (0 outside ``torchrun``), readable
    before the process group is joined."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device: torch.device) -> None:
    """Join the process group when launched by ``torchrun`` (gloo on CPU, nccl on CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA (this rank's GPU) when available, else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("base.device = 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def set_threads(threads: int) -> None:
    """Torch's intra-op CPU threads (``base.torch_threads``; 0 keeps torch's default, all
    cores). Every stage that runs torch sets it, so runs sharing a machine keep to theirs."""
    if threads:
        torch.set_num_threads(threads)


def setup_process(device_name: str, threads: int, seed: int) -> tuple[torch.device, int, int]:
    """A training process's start: CPU threads (:func:`set_threads`), device, process group
    under ``torchrun``, torch seed. Returns ``(device, rank, world)``."""
    set_threads(threads)
    device = resolve_device(device_name)
    init_distributed(device)
    torch.manual_seed(seed)
    return (device, *dist_info())
