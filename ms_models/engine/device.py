"""Device choice (Ascend -> GPU -> CPU) and data-parallel setup under msrun.

msrun exports ``MS_WORKER_NUM`` (and ``RANK_SIZE``/``RANK_ID``) to each worker; with more than one
worker ``init_distributed`` calls ``mindspore.communication.init()`` (HCCL on Ascend, NCCL on GPU,
mccl on CPU) and selects ``DATA_PARALLEL`` with gradient mean.
"""
import os

import numpy as np
import mindspore as ms

DEVICES = ("Ascend", "GPU", "CPU")
_WORLD = {"rank": 0, "size": 1}


def _unavailable_reason(device):
    """None if MindSpore can use ``device``, else why not."""
    if device == "CPU":
        return None
    try:
        ok = bool(ms.hal.is_available(device))
    except Exception as e:  # an absent backend plugin may raise instead of returning False
        return f"{device} not available ({type(e).__name__}: {e})"
    return None if ok else f"{device} not available (mindspore.hal.is_available('{device}') is False)"


def _runtime_started_on(dev):
    """True when this process already runs kernels on ``dev`` (a script's ``main`` called from a test
    or a notebook): the device can no longer be set, and it needs no setting."""
    return ms.get_context("device_target") == dev and bool(ms.hal.is_initialized(dev))


def select_device(requested="auto", log=print):
    """Set the MindSpore device and return its name.

    ``requested`` is 'auto' (first available of Ascend, GPU, CPU) or one of ``DEVICES``. The choice
    and the reason are passed to ``log``. On CPU, synchronous launch is enabled (4x faster PyNative
    on small machines). Under msrun the device id is left to MindSpore, which negotiates one per
    worker in ``init()``; so no op runs here (``check_device`` does, after ``init_distributed``).
    """
    if requested not in ("auto",) + DEVICES:
        raise ValueError(f"--device must be auto, Ascend, GPU or CPU, got '{requested}'")
    candidates = DEVICES if requested == "auto" else (requested,)
    reasons = []
    for dev in candidates:
        why = _unavailable_reason(dev)
        if why is None:
            break
        reasons.append(why)
    else:
        raise RuntimeError(f"requested device {requested} is not available: {'; '.join(reasons)}")
    how = "requested" if requested != "auto" else "auto: " + ("; ".join(reasons) + "; " if reasons else "") + f"using {dev}"
    if _runtime_started_on(dev):
        log(f"device {dev} ({how}; already initialised in this process)")
        return dev
    device_id = os.environ.get("DEVICE_ID")
    if device_id is not None and dev != "CPU" and int(os.environ.get("MS_WORKER_NUM", "1")) <= 1:
        ms.set_device(dev, int(device_id))
    else:
        ms.set_device(dev)
    if dev == "CPU":
        ms.runtime.launch_blocking()
    log(f"device {dev} ({how})")
    return dev


def check_device(device):
    """Run a tiny op; raise a clear error if the selected device cannot execute it."""
    try:
        probe = (ms.Tensor(np.ones(2, np.float32)) + 1).asnumpy()
    except Exception as e:
        raise RuntimeError(f"device {device} was selected but a first operation failed: {e}") from e
    if probe[0] != 2.0:
        raise RuntimeError(f"device {device} was selected but 1 + 1 gave {probe[0]}")


def setup_device(requested="auto", log=print):
    """``select_device``, ``init_distributed`` and ``check_device`` in that order; returns
    ``(device, rank, world_size)``."""
    dev = select_device(requested, log=log)
    rank, world = init_distributed()
    check_device(dev)
    return dev, rank, world


def init_distributed():
    """``(rank, world_size)``; initialises communication when launched with more than one worker."""
    size = int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1")))
    if size <= 1:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=get_group_size())
    _WORLD.update(rank=get_rank(), size=get_group_size())
    return _WORLD["rank"], _WORLD["size"]


def world_info():
    """``(rank, world_size)`` set by ``init_distributed`` ((0, 1) before or without it)."""
    return _WORLD["rank"], _WORLD["size"]
