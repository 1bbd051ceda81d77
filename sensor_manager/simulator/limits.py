"""Operating-system limits a many-sensor process runs into: open files above all.

Each hosted sensor keeps FDS_PER_SENSOR descriptors open (DB, WAL, shared-memory index, lock file);
RESERVED_FDS are left for everything else (Python, logs, status files, pipes).
"""
from __future__ import annotations

import resource

FDS_PER_SENSOR = 4
RESERVED_FDS = 256


def open_files_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = open_files_limit()
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def sensors_per_process(soft_limit: int) -> int:
    """How many sensors one process can host within `soft_limit` open files."""
    return max(1, (soft_limit - RESERVED_FDS) // FDS_PER_SENSOR)


def open_files_message() -> str:
    """What to say when a process ran out of file descriptors."""
    soft, hard = open_files_limit()
    return (f"too many open files (RLIMIT_NOFILE soft={soft}, hard={hard}); host fewer sensors per process "
            "or raise the hard limit (ulimit -Hn)")
