"""Device choice for the PyTorch reference (CUDA if asked/available, else CPU) and data-parallel
setup under torchrun (gloo on CPU, NCCL on CUDA)."""
import os

import torch
import torch.distributed as dist

_WORLD = {"rank": 0, "size": 1}


def select_device(requested="auto", log=print):
    """``torch.device`` for ``requested`` ('auto' | 'GPU' | 'CPU'; 'Ascend' is refused: the
    reference runs on CPU or CUDA)."""
    if requested == "Ascend":
        raise ValueError("--framework pt cannot run on Ascend (no torch_npu in this project); use --device CPU or GPU")
    if requested not in ("auto", "GPU", "CPU"):
        raise ValueError(f"--device must be auto, Ascend, GPU or CPU, got '{requested}'")
    if requested in ("auto", "GPU") and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        log(f"device cuda:{local} ({'requested' if requested == 'GPU' else 'auto: CUDA available'})")
        return torch.device("cuda", local)
    if requested == "GPU":
        raise RuntimeError("requested device GPU is not available: torch.cuda.is_available() is False")
    log(f"device CPU ({'requested' if requested == 'CPU' else 'auto: CUDA not available'})")
    return torch.device("cpu")


def init_distributed(device):
    """``(rank, world_size)``; initialises the process group when torchrun started several workers."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    _WORLD.update(rank=dist.get_rank(), size=dist.get_world_size())
    return _WORLD["rank"], _WORLD["size"]


def world_info():
    """``(rank, world_size)`` set by ``init_distributed`` ((0, 1) before or without it)."""
    return _WORLD["rank"], _WORLD["size"]
