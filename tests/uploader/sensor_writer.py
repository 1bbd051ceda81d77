"""A stand-in sensor for the chaos tests: appends rows in small transactions until its stop file appears.

Usage: python sensor_writer.py DB_PATH SENSOR_ID STOP_FILE [PAUSE_SECONDS]  (between transactions of 20 rows; 0.01)
"""
from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from uploader.sources.generations import DDL


def main(db_path: str, sensor_id: str, stop_file: str, pause: str = "0.01") -> None:
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(DDL["ours"])
    con.execute("INSERT INTO sensor_meta VALUES (?, 1, ?, ?)", (sensor_id, datetime.now(timezone.utc).isoformat(), str(uuid.uuid4())))
    con.commit()
    seq = 0
    while not Path(stop_file).exists():
        rows = []
        for _ in range(20):
            seq += 1
            rows.append((datetime.now(timezone.utc).isoformat(timespec="milliseconds"), sensor_id, 20.0 + seq % 5, seq))
        con.executemany("INSERT INTO sensor_readings (timestamp, sensor_id, temperature, seq) VALUES (?, ?, ?, ?)", rows)
        con.commit()
        time.sleep(float(pause))
    con.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
