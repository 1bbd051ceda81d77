"""`query --plot METRIC`: one metric over time, one line per sensor, drawn by plotext as text."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import plotext

from fleetcore.errors import UsageError

_UNITS = ((7200, 3600, "hours"), (120, 60, "minutes"), (0, 1, "seconds"))


def plot_metric(rows: list[dict[str, Any]], metric: str, width: int = 100, height: int = 24) -> str:
    """The plot as plain text (no colour codes): x is time since the first reading, y the metric."""
    points = [(datetime.fromisoformat(str(r["timestamp"])), r["sensor_id"], r[metric]) for r in rows if r.get(metric) is not None]
    if not points:
        raise UsageError(f"--plot {metric}: no readings match the filters")
    start = min(p[0] for p in points)
    end = max(p[0] for p in points)
    span = (end - start).total_seconds()
    divisor, unit = next((d, u) for floor, d, u in _UNITS if span >= floor)
    fig = plotext.figure
    fig.clear()
    fig.plot_size(width, height)
    for sensor_id in dict.fromkeys(p[1] for p in points):
        series = [p for p in points if p[1] == sensor_id]
        signal = fig.signal([(p[0] - start).total_seconds() / divisor for p in series], [p[2] for p in series])
        signal.lines()
        signal.label(sensor_id)
        fig.draw(signal)
    fig.title(f"{metric}, {start.isoformat(timespec='seconds')} .. {end.isoformat(timespec='seconds')}")
    fig.label(f"{unit} since {start.isoformat(timespec='seconds')}", axis="x")
    return fig.build().string(colorless=True)
