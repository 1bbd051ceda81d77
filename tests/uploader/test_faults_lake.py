"""Delivery-fault labels reach the lake; edge DBs and lakes from before the labels still ship."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from sensor_manager.simulator import db
from sensor_manager.simulator.identity import SensorIdentity
from sensor_manager.simulator.runner import RunOptions, SensorSpec, run_simulation
from sensor_manager.simulator.settings import (
    AnomalySettings,
    DeviceSettings,
    FaultSettings,
    NormalParameters,
    SimulationSettings,
)
from uploader.pipeline import Uploader
from uploader.schema import ADDED_COLUMNS, CANONICAL_SCHEMA, PARTITION_COLUMNS
from uploader.sinks.delta import DeltaSink
from uploader.sources.sqlite import SqliteSource

FAULTS = FaultSettings.model_validate({
    "enabled": True, "duplicate": {"rate": 0.05}, "out_of_order": {"rate": 0.05},
    "offline_burst": {"rate": 0.05, "duration_seconds": 5}, "clock_skew": {"rate": 1.0},
})
IDENTITY = SensorIdentity(
    sensor_id="Berlin_FLT1", location="Berlin", latitude=52.52, longitude=13.405, timezone="Europe/Berlin",
    manufacturer="EnvSense", model="TempVibe-2000", firmware_version="2.0.1", serial_number="SENSOR-1",
    manufacture_date="2022-01-01", deployment_type="rooftop", installation_date="2022-03-01", height_meters=3.0,
    orientation_degrees=90.0, instance_id="i-1", sensor_type="environmental_monitoring", seed=11,
)


def simulate(project: Path, faults: FaultSettings, seconds: float = 2_000) -> Path:
    options = RunOptions(simulation=SimulationSettings(readings_per_second=10, run_time_seconds=0.001),
                         normal_parameters=NormalParameters(), anomalies=AnomalySettings(), devices=DeviceSettings(),
                         backfill_seconds=seconds, faults=faults)
    spec = SensorSpec(IDENTITY, project / "data" / "Berlin" / "FLT1", fleet_epoch=1)
    run_simulation([spec], options)
    return spec.directory / "sensor_data.db"


def downgrade_to_v1(path: Path) -> None:
    """Make a DB read exactly as schema version 1 wrote it (no fault columns)."""
    view = "\n".join(line for line in db.VIEW_SQL.splitlines() if "fault" not in line and "duplicate_of" not in line)
    with sqlite3.connect(path) as conn:
        conn.executescript("DROP VIEW sensor_readings; ALTER TABLE readings DROP COLUMN fault;"
                           "ALTER TABLE readings DROP COLUMN duplicate_of;"
                           + view.replace("r.seq AS seq,", "r.seq AS seq") + "PRAGMA user_version = 1;")


def edge_labels(path: Path) -> dict[int, tuple]:
    with sqlite3.connect(path) as conn:
        return {seq: (fault, dup) for seq, fault, dup in conn.execute("SELECT seq, fault, duplicate_of FROM sensor_readings")}


def upload(invocation) -> None:
    uploader = Uploader(invocation())
    try:
        assert uploader.run_once()
    finally:
        uploader.close()


def lake_labels(project: Path) -> dict[int, tuple]:
    table = DeltaTable(str(project / "lake" / "sensor_readings")).to_pyarrow_table(columns=["seq", "fault", "duplicate_of"])
    return {seq: (fault, dup) for seq, fault, dup in zip(*(table[c].to_pylist() for c in table.column_names), strict=True)}


def test_faulty_rows_reach_the_lake_with_their_labels(project, invocation):
    path = simulate(project, FAULTS)
    edge = edge_labels(path)
    upload(invocation)
    assert lake_labels(project) == edge
    labels = {fault for fault, _ in edge.values()}
    assert labels == {"duplicate", "out_of_order", "offline_burst", "clock_skew"}  # every sensor skewed: no clean row
    assert all((dup is not None) == (fault == "duplicate") for fault, dup in edge.values())


def test_an_old_schema_edge_db_still_uploads(project, invocation):
    path = simulate(project, FaultSettings(), seconds=300)
    downgrade_to_v1(path)
    upload(invocation)
    lake = lake_labels(project)
    with sqlite3.connect(path) as conn:
        assert len(lake) == conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0] > 0
    assert set(lake.values()) == {(None, None)}


def test_a_source_follows_its_db_upgraded_in_place(project):
    path = simulate(project, FaultSettings(), seconds=100)
    downgrade_to_v1(path)
    source = SqliteSource(path, project / "data")
    try:
        clean_end = source.end_id()
        assert "fault" not in source.shape.columns
        simulate(project, FAULTS, seconds=200)  # the sensor restarts on this version: upgrades, then writes labels
        batches = list(source.read(clean_end, source.end_id()))
        faults = pa.concat_arrays([b.column(b.schema.get_field_index("fault")) for b in batches]).to_pylist()
        assert {"duplicate", "clock_skew"} <= set(faults)
    finally:
        source.close()


def test_a_lake_from_before_the_labels_gains_them(project, invocation):
    lake = project / "lake" / "sensor_readings"
    old_schema = pa.schema([f for f in CANONICAL_SCHEMA if f.name not in ADDED_COLUMNS])
    DeltaTable.create(str(lake), old_schema, partition_by=PARTITION_COLUMNS)
    assert DeltaSink(lake).check().ok
    path = simulate(project, FAULTS, seconds=300)
    upload(invocation)
    assert lake_labels(project) == edge_labels(path)
