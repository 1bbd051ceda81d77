"""The seed's cosmos-config.yaml: `--cosmos-config FILE` as an overlay and `config import-cosmos FILE`.

Every key of the seed's files is mapped or named as not applicable; any other key is an error naming it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleetcore.errors import ConfigError
from sensor_manager.cli import app
from sensor_manager.config import load_config, map_seed_config

REPO = Path(__file__).resolve().parents[2]
KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

# The seed's config/config.yaml (uploader part), as its reference documents it.
SEED_CONFIG = """\
cosmos:
  endpoint: "${COSMOS_ENDPOINT}"
  key: "${COSMOS_KEY}"
  database_name: "${COSMOS_DATABASE:-SensorData}"
  container_name: "${COSMOS_CONTAINER:-SensorReadings}"
  partition_key: "/city"
  resource_group: "sensors-rg"
  connection:
    mode: "direct"
    protocol: "Https"
    max_retry_attempts: 10
    retry_total: 10
    retry_backoff_max: 30
    max_retry_wait_time: 30
  performance: { preferred_regions: [West Europe], enable_endpoint_discovery: true, bulk_execution: true }
performance:
  throughput: 400
  autoscale: true
  batch_size: 100
  max_parallel_operations: 10
  disable_indexing_during_bulk: false
  upload_interval_seconds: 20
  upload_jitter_seconds: 10
  sleep_interval: 60
logging: { level: "INFO", log_request_units: true, log_latency: true }
config_watch: { enabled: true, poll_interval_seconds: 5 }
processing:
  processors: [Schematize, Sanitize]
cities:
  - name: Amsterdam
  - name: Gotham
    latitude: 40.7
    longitude: -74.0
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def seed_file(tmp_path) -> Path:
    return write(tmp_path / "cosmos-config.yaml", SEED_CONFIG)


@pytest.fixture
def seed_env(monkeypatch):
    monkeypatch.setenv("COSMOS_ENDPOINT", "https://seed-account.documents.azure.com:443/")
    monkeypatch.setenv("COSMOS_KEY", KEY)


def test_every_key_of_the_seed_file_is_mapped_or_named():
    mapping = map_seed_config(yaml.safe_load(SEED_CONFIG), "seed.yaml")
    assert mapping.problems.lines == []
    named = {note.split(": ")[1] for note in mapping.notes}
    assert named == {
        "cosmos.resource_group", "cosmos.connection.mode", "cosmos.connection.protocol",
        "cosmos.connection.max_retry_attempts", "cosmos.connection.retry_total", "cosmos.connection.retry_backoff_max",
        "cosmos.connection.max_retry_wait_time", "cosmos.performance.enable_endpoint_discovery",
        "cosmos.performance.bulk_execution", "performance.throughput", "performance.autoscale",
        "performance.disable_indexing_during_bulk", "performance.upload_jitter_seconds", "performance.sleep_interval",
        "logging.level", "logging.log_request_units", "logging.log_latency",
        "config_watch.enabled", "config_watch.poll_interval_seconds",
    }
    assert all(": not applicable: " in note for note in mapping.notes)
    cosmos = mapping.section["uploader"]["sinks"]["cosmos"]
    assert cosmos == {
        "enabled": True, "endpoint": "${COSMOS_ENDPOINT}", "key": "${COSMOS_KEY}",
        "database_name": "${COSMOS_DATABASE:-SensorData}", "container_name": "${COSMOS_CONTAINER:-SensorReadings}",
        "partition_key": "/city", "preferred_regions": ["West Europe"], "batch_size": 100, "max_in_flight": 10,
    }
    assert mapping.section["uploader"]["interval_seconds"] == 20
    assert mapping.section["uploader"]["stage"] == "sanitized"
    assert [c["name"] for c in mapping.section["cities"]] == ["Amsterdam", "Gotham"]


@pytest.mark.parametrize(("text", "problem"), [
    ("cosmos:\n  endpont: x\n", "cosmos.endpont: unknown key 'endpont' in the seed's Cosmos config; did you mean 'endpoint'?"),
    ("cosmos:\n  endpoint: x\nperformace: {}\n", "performace: unknown key 'performace' in the seed's Cosmos config; did you mean 'performance'?"),
    ("cosmos:\n  connection:\n    pool: 3\n", "cosmos.connection.pool: unknown key 'pool'"),
    ("cosmos:\n  database: A\n  database_name: B\n", "cosmos.database_name: sets uploader.sinks.cosmos.database_name as cosmos.database does"),
    ("processing:\n  processors: [Aggregate]\n", "processing.processors: unknown processor 'Aggregate'"),
    ("cosmos: [a, b]\n", "cosmos: must be a mapping of keys"),
])
def test_unknown_or_conflicting_keys_are_named(text, problem):
    lines = map_seed_config(yaml.safe_load(text), "seed.yaml").problems.lines
    assert len(lines) == 1 and lines[0].startswith(f"seed.yaml: {problem}"), lines


@pytest.mark.parametrize(("processors", "stage"), [([], "raw"), (["Schematize"], "schematized"),
                                                   (["sanitize", "Schematize"], "sanitized")])
def test_processors_become_the_stage(processors, stage):
    mapping = map_seed_config({"processing": {"processors": processors}}, "seed.yaml")
    assert mapping.section["uploader"]["stage"] == stage


def test_overlay_maps_expands_and_notes(project_dir, seed_file, seed_env):
    config = load_config(project_dir=project_dir, cosmos_config=seed_file)
    cosmos = config.uploader.sinks.cosmos
    assert cosmos.enabled and cosmos.endpoint == "https://seed-account.documents.azure.com:443/" and cosmos.key == KEY
    assert (cosmos.database_name, cosmos.container_name, cosmos.partition_key) == ("SensorData", "SensorReadings", "/city")
    assert (cosmos.batch_size, cosmos.max_in_flight, cosmos.preferred_regions) == (100, 10, ["West Europe"])
    assert config.uploader.interval_seconds == 20
    assert [c.name for c in config.cities] == ["Amsterdam", "Gotham"]
    assert len(config.notes) == 19 and all(n.startswith(f"--cosmos-config {seed_file}: ") for n in config.notes)


def test_overlay_wins_over_the_file_and_the_environment(project_dir, tmp_path, seed_env, monkeypatch):
    write(project_dir / "sensor-manager.yaml", "uploader:\n  sinks:\n    cosmos:\n      database_name: FromFile\n")
    monkeypatch.setenv("COSMOS_CONTAINER", "FromEnvironment")
    seed = write(tmp_path / "seed.yaml", "cosmos:\n  database_name: FromSeed\n  container_name: SeedReadings\n")
    cosmos = load_config(project_dir=project_dir, cosmos_config=seed).uploader.sinks.cosmos
    assert (cosmos.database_name, cosmos.container_name) == ("FromSeed", "SeedReadings")


def test_overlay_errors_name_the_seed_key_and_hide_the_key(project_dir, tmp_path):
    seed = write(tmp_path / "seed.yaml", "cosmos:\n  endpoint: not a url\n  key: not base64!\n  database_name: ${NO_SUCH_VAR}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(project_dir=project_dir, cosmos_config=seed)
    text = "\n".join(caught.value.problems)
    assert f"--cosmos-config {seed}: cosmos.endpoint (sets uploader.sinks.cosmos.endpoint): 'not a url' is not an https:// URL" in text
    assert f"--cosmos-config {seed}: cosmos.key (sets uploader.sinks.cosmos.key): is not a base64 master key" in text
    assert f"--cosmos-config {seed}: cosmos.database_name (sets uploader.sinks.cosmos.database_name): environment variable NO_SUCH_VAR is not set" in text
    assert "not base64!" not in text


def test_a_file_without_cosmos_settings_or_missing_is_refused(project_dir, tmp_path):
    with pytest.raises(ConfigError, match="no Cosmos settings in it"):
        load_config(project_dir=project_dir, cosmos_config=write(tmp_path / "c.yaml", "cities: [Paris]\n"))
    with pytest.raises(ConfigError, match="--cosmos-config .*nope.yaml: file not found"):
        load_config(project_dir=project_dir, cosmos_config=tmp_path / "nope.yaml")


def test_config_validate_accepts_the_seed_file(runner, project_dir, seed_file, seed_env):
    result = runner.invoke(app, ["config", "validate", "--project-dir", str(project_dir), "--cosmos-config", str(seed_file), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["config"]["uploader"]["sinks"]["cosmos"]["key"] == "***"
    assert document["config"]["uploader"]["sinks"]["cosmos"]["enabled"] is True
    assert len(document["notes"]) == 19
    assert "warning: --cosmos-config" in result.stderr and KEY not in result.output


def test_config_validate_with_a_bad_seed_file_exits_2(runner, project_dir, tmp_path, tree_listing):
    seed = write(tmp_path / "seed.yaml", "cosmos:\n  endpoint: https://a.documents.azure.com/\n  partition: /city\n")
    before = tree_listing(project_dir)
    result = runner.invoke(app, ["config", "validate", "--project-dir", str(project_dir), "--cosmos-config", str(seed)])
    assert result.exit_code == 2
    assert f"error: --cosmos-config {seed}: cosmos.partition: unknown key 'partition' in the seed's Cosmos config; " \
           "did you mean 'partition_key'?" in result.stderr
    assert "Traceback" not in result.output and tree_listing(project_dir) == before


def test_import_cosmos_prints_a_section_that_validates(runner, project_dir, tmp_path, seed_env):
    seed = write(tmp_path / "seed.yaml", SEED_CONFIG.replace('"${COSMOS_KEY}"', f'"{KEY}"'))
    result = runner.invoke(app, ["config", "import-cosmos", str(seed), "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.output
    assert KEY not in result.stdout and "key: ${COSMOS_KEY}" in result.stdout
    assert "cosmos.key is written as ${COSMOS_KEY}, not copied" in result.stderr
    assert "# performance.throughput: not applicable: " in result.stdout
    write(project_dir / "sensor-manager.yaml", result.stdout)
    config = load_config(project_dir=project_dir)
    assert config.uploader.sinks.cosmos.enabled and config.uploader.sinks.cosmos.key == KEY
    assert config.uploader.stage == "sanitized" and config.uploader.sinks.cosmos.max_in_flight == 10


def test_import_cosmos_writes_only_a_new_file(runner, project_dir, seed_file, tmp_path):
    out = tmp_path / "section.yaml"
    assert runner.invoke(app, ["config", "import-cosmos", str(seed_file), "-o", str(out)]).exit_code == 0
    assert yaml.safe_load(out.read_text())["uploader"]["sinks"]["cosmos"]["partition_key"] == "/city"
    again = runner.invoke(app, ["config", "import-cosmos", str(seed_file), "-o", str(out)])
    assert again.exit_code == 2 and f"error: --output {out}: already exists" in again.stderr


def test_import_cosmos_names_unknown_keys_and_exits_2(runner, tmp_path):
    seed = write(tmp_path / "seed.yaml", "cosmos:\n  endpoint: x\n  shard_key: /city\n")
    result = runner.invoke(app, ["config", "import-cosmos", str(seed)])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"error: config import-cosmos {seed}: cosmos.shard_key: unknown key 'shard_key'" in result.stderr


def test_python_m_uploader_refuses_the_seed_file(tmp_path, seed_file):
    done = subprocess.run([sys.executable, "-m", "uploader", "--sqlite", str(tmp_path), "--cosmos-config", str(seed_file)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: --cosmos-config: python -m uploader reads resolved settings only" in done.stderr
