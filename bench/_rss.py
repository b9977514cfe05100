"""Peak memory of the calling process, for the benchmarks' child processes."""

from __future__ import annotations

import resource


def own_peak_rss_mb() -> float:
    """This process's own high-water mark in MiB (VmHWM).

    Not ru_maxrss: Linux carries it across fork and execve, so a child started by a large bench
    process would report at least the parent's footprint."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
