"""Peak memory of one library's training step: CUDA's allocator counter, or on CPU the process's peak
resident set, each measured from just before the model is built.

On CPU each library runs in its own fresh process (``bench_model.py --mode memory`` starts one per
library), so one's freed-but-kept allocations cannot hide the other's. There the peak is ``VmHWM`` (the
kernel's high-water mark of the resident set) after the warm-up steps, minus ``VmRSS`` right before
the model is built; the high-water mark is reset (``/proc/self/clear_refs``, ``5``) at that moment,
so the imports, the weights the peers are built from and the batch are not counted.

Cross-checked on 2026-11-27 (small config, fp32, batch 2 and 4 x 256) against the allocator's own
count (the ``[memory]`` events of ``torch.profiler`` with ``profile_memory=True``, summed in time
order): the growth with the batch and the difference between libraries agreed within 2 MiB, and the
RSS peak sat a constant ~60 MiB below the allocator's (memory allocated but never all resident at once).
"""

from __future__ import annotations

import ctypes
import gc
import re
from pathlib import Path

import torch

MIB = 2**20


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise SystemExit(f"/proc/self/status has no {field}: the CPU memory mode needs Linux")
    return int(match.group(1))


class PeakMemory:
    """``start()`` right before building the model, ``peak_mib()`` after the steps: the peak above start.

    Args:
        device: CUDA uses ``torch.cuda.max_memory_allocated``; anything else the process's RSS.
    """

    def __init__(self, *, device: torch.device) -> None:
        self.device = device
        self._base = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        except OSError as err:
            raise SystemExit(f"cannot reset the peak RSS through /proc/self/clear_refs ({err})") from None
        self._base = _status_kib("VmRSS") * 1024

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self._base) / MIB
        return (_status_kib("VmHWM") * 1024 - self._base) / MIB


def release_freed(device: torch.device) -> None:
    """Return freed memory to the system: CUDA's cached blocks, or on CPU glibc's free heap pages
    (``malloc_trim``), which the process would otherwise keep resident and reuse without a new peak."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measured run may then under-count
        pass
