"""`diagnostics` through the CLI runner: healthy, corrupt, unwritable, crash-looping, lossy; and the bundle."""
from __future__ import annotations

import json
import sqlite3
import tarfile
from datetime import datetime, timedelta, timezone

from sensor_manager.cli import app
from sensor_manager.runtimes import record_runtime
from sensor_manager.runtimes.base import ServiceStatus
from sensor_manager.simulator import db as edge_schema

SECRET = "U3VwM3JTM2NyZXRDb3Ntb3NLZXk="  # base64, as a Cosmos key is


def diagnose(runner, fleet, *args):
    result = runner.invoke(app, ["diagnostics", "--project-dir", str(fleet.root), *args])
    assert "Traceback" not in result.output
    return result


def checks_of(result):
    document = json.loads(result.stdout)
    assert list(document) == ["schema_version", "ok", "checks"]
    return document, {c["name"]: c for c in document["checks"]}


def test_healthy_stopped_fleet_passes_and_skips_what_does_not_apply(runner, fleet):
    fleet.upload("Amsterdam")
    result = diagnose(runner, fleet, "--json")
    assert result.exit_code == 0, result.output
    document, checks = checks_of(result)
    assert document["ok"] is True
    assert all(set(c) == {"name", "status", "detail", "hint"} for c in document["checks"])
    assert checks["config"]["status"] == "pass"
    assert {checks[n]["status"] for n in ("runtime", "engine", "compose", "image", "services", "uploader lag")} == {"skip"}
    assert [checks[f"db {s.sensor_id}"]["status"] for s in fleet.plan.sensors] == ["pass"] * 3
    assert "20 rows, seq 1..20" in checks["db Amsterdam_AM00"]["detail"]
    assert checks["lake readable"]["status"] == checks["lake writable"]["status"] == "pass"
    text = diagnose(runner, fleet)
    assert text.exit_code == 0
    assert "✓ db Amsterdam_AM00: quick_check ok" in text.output and "- engine: the recorded runtime is not docker" in text.output


def test_corrupt_db_fails(runner, fleet):
    path = fleet.db("Amsterdam_AM01")
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xde\xad\xbe\xef" * ((len(data) - 4096) // 4)
    path.write_bytes(bytes(data))
    result = diagnose(runner, fleet, "--json")
    assert result.exit_code == 1
    document, checks = checks_of(result)
    assert document["ok"] is False
    assert checks["db Amsterdam_AM01"]["status"] == "fail"
    assert "moves a corrupt DB aside" in checks["db Amsterdam_AM01"]["hint"]
    assert checks["db Amsterdam_AM00"]["status"] == "pass"
    assert "error: 1 of " in result.stderr and "checks failed: db Amsterdam_AM01" in result.stderr


def test_unwritable_lake_fails(runner, fleet):
    fleet.layout.lake.write_text("not a directory\n")  # root ignores permission bits; a file in the way stops everyone
    result = diagnose(runner, fleet)
    assert result.exit_code == 1
    assert "✗ lake writable:" in result.output and "is not a directory" in result.output


def test_crash_looping_service_fails_with_its_last_error_lines(runner, fleet, monkeypatch):
    record_runtime(fleet.layout, "local", "test")
    (fleet.layout.logs / "uploader-amsterdam.log").write_text("Upload started.\nerror: lake is not writable\n")
    statuses = [
        ServiceStatus("sensor-amsterdam", "sensor", "Amsterdam", ["Amsterdam_AM00", "Amsterdam_AM01"], "running", "healthy", 0, 123),
        ServiceStatus("uploader-amsterdam", "uploader", "Amsterdam", [], "crashloop", "unhealthy", 6, None),
    ]
    monkeypatch.setattr("sensor_manager.observe.diagnostics.service_statuses", lambda layout: statuses)
    result = diagnose(runner, fleet, "--json")
    assert result.exit_code == 1
    _, checks = checks_of(result)
    assert checks["service sensor-amsterdam"]["status"] == "pass"
    crash = checks["service uploader-amsterdam"]
    assert crash["status"] == "fail" and "crashloop" in crash["detail"] and "error: lake is not writable" in crash["detail"]
    assert "logs uploader-amsterdam" in crash["hint"]
    assert checks["runtime"]["status"] == "pass" and checks["engine"]["status"] == "skip"
    # Nothing of Amsterdam was uploaded and its oldest row is from 2025: far above the lag threshold.
    assert checks["lag Amsterdam"]["status"] == "warn" and checks["lag Amsterdam"]["detail"].startswith("40 rows, oldest ")


def test_seq_gap_is_reported_as_loss(runner, fleet):
    conn = sqlite3.connect(fleet.db("Sao_Paulo_SA00"))
    ts = int(datetime(2025, 6, 1, 12, 0, 5, tzinfo=timezone.utc).timestamp() * 1000)
    conn.execute(edge_schema.INSERT_READING_SQL, (24, ts, 0, 1, 60.0, 50.0, 1013.0, 2.5, 12.0, 0))
    conn.commit()
    conn.close()
    result = diagnose(runner, fleet, "--json")
    assert result.exit_code == 1
    _, checks = checks_of(result)
    gap = checks["db Sao_Paulo_SA00"]
    assert gap["status"] == "fail"
    assert gap["detail"].startswith("3 seq values missing (first after seq 20): rows were lost")


def test_clock_ahead_warns(runner, fleet):
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    conn = sqlite3.connect(fleet.db("Amsterdam_AM00"))
    conn.execute(edge_schema.INSERT_READING_SQL, (21, int(future.timestamp() * 1000), 0, 1, 60.0, 50.0, 1013.0, 2.5, 12.0, 0))
    conn.commit()
    conn.close()
    result = diagnose(runner, fleet, "--json")
    assert result.exit_code == 0  # a warning is not a failure
    _, checks = checks_of(result)
    assert checks["db Amsterdam_AM00"]["status"] == "warn" and "in the future" in checks["db Amsterdam_AM00"]["detail"]


def test_bundle_holds_everything_but_no_secret(runner, fleet, monkeypatch, tmp_path):
    monkeypatch.setenv("COSMOS_KEY", SECRET)
    config = fleet.root / "sensor-manager.yaml"
    config.write_text("project: obs-test\nuploader:\n  sinks:\n    cosmos:\n      enabled: false\n      endpoint: https://example.invalid\n"
                      "      key: ${COSMOS_KEY}\n")
    fleet.upload("Amsterdam")
    status = fleet.layout.status_file("uploader", "amsterdam")
    document = json.loads(status.read_text())
    document["sinks"]["delta"]["last_error"] = f"auth failed for key {SECRET}"
    status.write_text(json.dumps(document))
    (fleet.layout.logs / "uploader-amsterdam.log").write_text("".join(f"line {i}\n" for i in range(500)) + f"Connecting with key={SECRET}\n")
    (fleet.layout.secrets / "s3_secret_access_key").write_text("AnotherSecretValue42\n")
    target = tmp_path / "support.tar.gz"
    result = diagnose(runner, fleet, "--config", str(config), "--bundle", str(target))
    assert result.exit_code == 0, result.output
    with tarfile.open(target) as archive:
        members = {m.name.split("/", 1)[1]: archive.extractfile(m).read().decode() for m in archive.getmembers()}
    assert {"diagnostics.json", "config.json", "plan.json", "status/uploader-amsterdam.json", "logs/uploader-amsterdam.log", "databases.json"} <= set(members)
    everything = "\n".join(members.values())
    assert SECRET not in everything and "AnotherSecretValue42" not in everything
    assert json.loads(members["config.json"])["uploader"]["sinks"]["cosmos"]["key"] == "***"
    assert "Connecting with key=***" in members["logs/uploader-amsterdam.log"]
    assert len(members["logs/uploader-amsterdam.log"].splitlines()) == 200
    stats = {d["sensor_id"]: d for d in json.loads(members["databases.json"])}
    assert stats["Amsterdam_AM00"]["rows"] == 20 and stats["Amsterdam_AM00"]["quick_check"] == "ok"



def test_docker_image_check_reads_the_image_the_compose_render_recorded(fleet, monkeypatch):
    """runtime.json never held the image tag (the check read it there): the compose record holds it."""
    from sensor_manager.observe import diagnostics
    from sensor_manager.runtimes import RuntimeRecord, engine

    class Images:
        def list(self, name):
            return [name] if name == "sensor-manager:abc123" else []

    class Client:
        images = Images()

        def version(self):
            return {"Version": "27.0", "ApiVersion": "1.46"}

    monkeypatch.setattr(engine, "docker_client", lambda timeout=60: Client())
    monkeypatch.setattr(engine, "compose_command", lambda: ("docker", "compose"))
    record = fleet.layout.state / "compose" / "project.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"schema_version": 1, "project_name": "sm-test", "image": "sensor-manager:abc123"}))
    checks = {c.name: c for c in diagnostics._docker(fleet.layout, RuntimeRecord(runtime="docker"))}
    assert (checks["image"].status, checks["image"].detail) == ("pass", "sensor-manager:abc123 present")
