"""What the GPU executor runs on: CUDA when present, CPU otherwise, and its memory."""

from __future__ import annotations

import os
from typing import Any


def detect() -> dict[str, Any]:
    """kind ('cuda' or 'cpu'), name, total_mb and free_mb of the device torch will use."""
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return {
            "kind": "cuda",
            "name": torch.cuda.get_device_name(0),
            "total_mb": total // 2**20,
            "free_mb": free // 2**20,
            "torch": torch.__version__,
        }
    pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    avail = os.sysconf("SC_AVPHYS_PAGES")
    return {
        "kind": "cpu",
        "name": f"CPU ({os.cpu_count()} cores)",
        "total_mb": pages * page // 2**20,
        "free_mb": avail * page // 2**20,
        "torch": torch.__version__,
    }


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def free_memory() -> None:
    """Give cached GPU memory back after a task."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
