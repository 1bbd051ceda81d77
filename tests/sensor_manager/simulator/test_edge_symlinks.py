"""Edge DBs are opened through no symbolic link and only under the data root (simulator, uploader, CLI)."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from fleetcore.edge_db import UnsafeEdgePathError, confined_db_path
from sensor_manager.cli import app
from sensor_manager.simulator.db import open_readonly
from sensor_manager.simulator.writer import SensorWriter
from uploader.sources.sqlite import SourceUnreadableError, SqliteSource

from .conftest import make_identity

SENSOR_DIR = Path("data") / "Berlin" / "AB12"


def _foreign_db(path: Path) -> Path:
    """A SQLite DB that belongs to someone else, in rollback-journal mode."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE secrets (value TEXT)")
    conn.execute("INSERT INTO secrets VALUES ('mine')")
    conn.commit()
    conn.close()
    return path


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "project" / SENSOR_DIR).mkdir(parents=True)
    return tmp_path / "project"


def test_a_real_path_under_the_data_root_passes(project):
    db = project / SENSOR_DIR / "sensor_data.db"
    assert confined_db_path(db) == db.resolve()
    assert confined_db_path(db, project / "data") == db.resolve()


def test_a_linked_data_root_is_the_users_choice(tmp_path, project):
    (tmp_path / "big-disk").mkdir()
    os.symlink(tmp_path / "big-disk", project / "elsewhere")
    db = project / "elsewhere" / "Berlin" / "AB12" / "sensor_data.db"
    assert confined_db_path(db, project / "elsewhere") == tmp_path / "big-disk" / "Berlin" / "AB12" / "sensor_data.db"


@pytest.mark.parametrize("link", ["sensor_data.db", "sensor_data.db-wal", "sensor_data.db-shm", "sensor_data.db-journal"])
def test_a_linked_db_or_side_file_is_refused(tmp_path, project, link):
    os.symlink(tmp_path / "outside", project / SENSOR_DIR / link)
    with pytest.raises(UnsafeEdgePathError, match=rf"{link} is a symbolic link; refusing to open it"):
        confined_db_path(project / SENSOR_DIR / "sensor_data.db")


def test_a_linked_folder_is_refused(tmp_path, project):
    (tmp_path / "outside" / "AB12").mkdir(parents=True)
    os.symlink(tmp_path / "outside", project / "data" / "Paris")
    with pytest.raises(UnsafeEdgePathError, match="Paris is a symbolic link"):
        confined_db_path(project / "data" / "Paris" / "AB12" / "sensor_data.db")


def test_a_path_leaving_the_data_root_is_refused(project):
    with pytest.raises(UnsafeEdgePathError, match="outside the data root"):
        confined_db_path(project / "data" / ".." / "state" / "sensor_data.db", project / "data")


def test_the_simulator_never_creates_a_db_through_a_dangling_link(tmp_path, project):
    target = tmp_path / "outside.db"
    os.symlink(target, project / SENSOR_DIR / "sensor_data.db")
    with pytest.raises(UnsafeEdgePathError):
        SensorWriter(project / SENSOR_DIR, make_identity()).open()
    assert not target.exists()
    assert not (project / SENSOR_DIR / "sensor_data.db.lock").exists()


def test_the_simulator_leaves_a_linked_foreign_db_alone(tmp_path, project):
    foreign = _foreign_db(tmp_path / "foreign.db")
    os.symlink(foreign, project / SENSOR_DIR / "sensor_data.db")
    with pytest.raises(UnsafeEdgePathError):
        SensorWriter(project / SENSOR_DIR, make_identity()).open()
    assert _journal_mode(foreign) == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db", "project"]


def test_the_simulator_does_not_follow_a_linked_city_folder(tmp_path, project):
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", project / "data" / "Paris")
    with pytest.raises(UnsafeEdgePathError):
        SensorWriter(project / "data" / "Paris" / "AB12", make_identity()).open()
    assert list((tmp_path / "outside").iterdir()) == []


def test_the_uploader_skips_a_linked_db_as_unreadable(tmp_path, project):
    os.symlink(_foreign_db(tmp_path / "foreign.db"), project / SENSOR_DIR / "sensor_data.db")
    with pytest.raises(SourceUnreadableError, match="is a symbolic link"):
        SqliteSource(project / SENSOR_DIR / "sensor_data.db", project / "data")


def test_monitor_and_diagnostics_report_a_linked_db_as_unreadable(tmp_path, project, runner):
    os.symlink(_foreign_db(tmp_path / "foreign.db"), project / SENSOR_DIR / "sensor_data.db")
    assert runner.invoke(app, ["monitor", "--once", "--project-dir", str(project)]).exit_code == 0
    result = runner.invoke(app, ["diagnostics", "--project-dir", str(project)])
    assert result.exit_code == 1 and "sensor_data.db is a symbolic link; refusing to open it" in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db", "project"]


def test_cli_readers_refuse_a_linked_db(tmp_path, project, runner):
    foreign = _foreign_db(tmp_path / "foreign.db")
    os.symlink(foreign, project / SENSOR_DIR / "sensor_data.db")
    with pytest.raises(UnsafeEdgePathError):
        open_readonly(project / SENSOR_DIR / "sensor_data.db")
    result = runner.invoke(app, ["query", "--all", "--project-dir", str(project)])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "is a symbolic link; refusing to open it" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db", "project"]
