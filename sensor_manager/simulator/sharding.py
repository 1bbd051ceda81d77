"""More sensors than one process can hold open: split them across child processes.

Each hosted sensor keeps about FDS_PER_SENSOR descriptors open, so a process hosts at most
`sensors_per_process(RLIMIT_NOFILE)` sensors. Beyond that `run_sharded` forks one child per shard;
each child runs its shard with its own status file (`<status>.shard-<i>.json`), and the parent
merges those into the one status file the caller asked for. A stop request is passed on as SIGTERM.
"""
from __future__ import annotations

import multiprocessing
import threading
from dataclasses import replace
from pathlib import Path

from fleetcore.errors import ProcessFailedError
from fleetcore.signals import stop_on_signals
from sensor_manager.simulator.limits import raise_open_files_limit, sensors_per_process
from sensor_manager.simulator.runner import RunOptions, SensorSpec, SimulationSummary, run_simulation
from sensor_manager.simulator.status_file import SimulatorStatus

MERGE_STATES = ("failed", "starting", "backfilling", "stopping", "running", "stopped")  # first match wins


def run_sharded(specs: list[SensorSpec], options: RunOptions, stop: threading.Event,
                capacity: int | None = None) -> SimulationSummary:
    """Run `specs` in this process when they fit, else in forked shards of at most `capacity` sensors."""
    capacity = capacity or sensors_per_process(raise_open_files_limit())
    if len(specs) <= capacity:
        return run_simulation(specs, options, stop)
    shards = [specs[i:i + capacity] for i in range(0, len(specs), capacity)]
    status = options.status_file
    shard_files = [_shard_status_path(status, i) if status else None for i in range(len(shards))]
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    children = [
        context.Process(target=_shard_main, args=(shard, replace(options, status_file=path), results), daemon=False)
        for shard, path in zip(shards, shard_files, strict=True)
    ]
    for child in children:
        child.start()
    signalled = False
    while any(child.is_alive() for child in children):
        shard_failed = any(c.exitcode not in (None, 0) for c in children)
        if (stop.is_set() or shard_failed) and not signalled:  # one failed shard stops the rest: restart as one
            for child in children:
                if child.is_alive():
                    child.terminate()  # SIGTERM
            signalled = True
        if status:
            _merge(status, options, shard_files)
        stop.wait(min(1.0, options.simulation.status_interval_seconds))
    for child in children:
        child.join()
    if status:
        _merge(status, options, shard_files)
    summaries = [results.get() for _ in range(sum(1 for c in children if c.exitcode == 0))]
    failed = [c for c in children if c.exitcode != 0]
    if failed:
        raise ProcessFailedError(
            f"{len(failed)} of {len(children)} simulator shards failed (exit codes "
            f"{', '.join(str(c.exitcode) for c in failed)}); see their status files next to {status}"
        )
    return SimulationSummary(
        sensors=sum(s.sensors for s in summaries),
        rows_written=sum(s.rows_written for s in summaries),
        skipped_readings=sum(s.skipped_readings for s in summaries),
        errors=sum(s.errors for s in summaries),
        seconds=max(s.seconds for s in summaries),
        stopped_by_signal=stop.is_set(),
    )


def _shard_status_path(status: Path, index: int) -> Path:
    return status.with_name(f"{status.stem}.shard-{index}{status.suffix}")


def _shard_main(specs: list[SensorSpec], options: RunOptions, results) -> None:
    with stop_on_signals() as stop:
        summary = run_simulation(specs, options, stop)
    results.put(summary)


def _merge(path: Path, options: RunOptions, shard_files: list[Path | None]) -> None:
    read = [SimulatorStatus.read(p) for p in shard_files if p is not None]
    documents = [d for d in read if d]
    if not documents:
        return
    states = {d.state for d in documents}
    state = next((s for s in MERGE_STATES if s in states), "running")
    sensors: dict = {}
    for document in documents:
        sensors.update(document.sensors)
    fatal = next((d.fatal_error for d in documents if d.fatal_error), None)
    if fatal is None and any(d.is_stale() for d in documents):
        fatal = "a simulator shard stopped refreshing its status file"
    # Settings count as applied once every shard applied them; a refusal by any shard is reported.
    applied = {d.applied_settings.digest if d.applied_settings else None for d in documents}
    SimulatorStatus(name=options.status_name, state=state, fatal_error=fatal, shards=len(shard_files), sensors=sensors,
                    interval_seconds=options.simulation.status_interval_seconds,
                    applied_settings=documents[0].applied_settings if len(applied) == 1 else None,
                    rejected_settings=next((d.rejected_settings for d in documents if d.rejected_settings), None),
                    injections=sorted(set.intersection(*(set(d.injections) for d in documents)))).write(path)
