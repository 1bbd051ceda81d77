"""What the chaos tests share: stand-in sensors writing while an uploader is killed over and over."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

WRITER = Path(__file__).with_name("sensor_writer.py")


@contextmanager
def sensors_writing(project: Path, rows_per_second: int | None = None) -> Iterator[None]:
    """Two stand-in sensors (Berlin AA11, BB22) append rows until the block ends (full speed without a rate)."""
    stop = project / "stop-writing"
    pace = [str(rows_per_second)] if rows_per_second else []
    writers = [subprocess.Popen([sys.executable, str(WRITER), str(project / "data" / "Berlin" / code / "sensor_data.db"),
                                 f"Berlin_{code}", str(stop), *pace]) for code in ("AA11", "BB22")]
    try:
        yield
    finally:
        stop.touch()
        for writer in writers:
            writer.wait(timeout=30)


def kill_9_repeatedly(uploader: list[str], kills: int, rng: random.Random, seconds: tuple[float, float]) -> None:
    """Start `uploader --continuous` and SIGKILL it `kills` times, each after a random time within `seconds`
    (longer than its start-up, so kills land in reads, writes and commits)."""
    time.sleep(0.5)
    for _ in range(kills):
        process = subprocess.Popen([*uploader, "--continuous", "--interval", "0.05"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(*seconds))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
