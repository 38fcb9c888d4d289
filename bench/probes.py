"""What the benchmarks read about a running process, from outside it (Linux /proc).

CPU time comes from the process's own CPU clock (`clock_gettime` on the
process-wide clock id the kernel derives from a pid): nanosecond resolution,
every thread, live or exited. Peak RSS is `VmHWM`, which writing `5` to
`/proc/<pid>/clear_refs` resets, so one process can report a peak per phase.
"""

from __future__ import annotations

import time
from pathlib import Path

_CPUCLOCK_SCHED = 2


def cpu_clock_id(pid: int) -> int:
    """The kernel's MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)."""
    return ((~pid) << 3) | _CPUCLOCK_SCHED


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used so far."""
    return time.clock_gettime_ns(cpu_clock_id(pid)) / 1e9


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """`VmRSS` (now) or `VmHWM` (peak since start or the last `reset_peak`), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"{field} not in /proc/{pid}/status")


def rss_mb(pid: int) -> float:
    return memory_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float:
    return memory_mb(pid, "VmHWM")


def reset_peak(pid: int) -> None:
    """Start a new peak-RSS phase (VmHWM := VmRSS now)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
