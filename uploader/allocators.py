"""Allocator settings for the native libraries, applied before they load (they read them once, at start).

deltalake's Rust core allocates with its own jemalloc. With its defaults (one arena per CPU, 10 s
decay) a drain of millions of rows peaked near 400 MB; one arena with a 1 s dirty-page decay keeps the
peak under 300 MB at the same throughput (benchmarks/uploader_throughput.py). An operator's own
`_RJEM_MALLOC_CONF` wins.
"""
from __future__ import annotations

import os
import sys

DELTALAKE_JEMALLOC = "narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0"


def tune_allocators() -> bool:
    """Set the defaults; False when too late (deltalake already loaded in this process)."""
    if "deltalake" in sys.modules:
        return False
    os.environ.setdefault("_RJEM_MALLOC_CONF", DELTALAKE_JEMALLOC)
    return True
