"""load_config: lookup order, precedence (flag > environment > file > default), .env, ${VAR} expansion,
sinks enabled by the seed's variables, city resolution and redaction."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetcore.errors import ConfigError
from sensor_manager.config import Config, bundled_file, load_config, redact

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_reproduce_the_seed_demo(project_dir):
    config = load_config(project_dir=project_dir)
    assert [c.name for c in config.cities] == ["Amsterdam", "Berlin", "London", "New York", "Tokyo"]
    assert config.sensors_per_city == 5 and config.simulation.readings_per_second == 1
    assert config.anomalies.probability == 0.05 and config.uploader.interval_seconds == 30
    assert config.uploader.sinks.delta.enabled and not config.uploader.sinks.cosmos.enabled
    assert not config.uploader.sinks.s3.enabled
    assert config.source_path == str(bundled_file("sensor-manager.yaml"))


def test_bundled_config_equals_model_defaults(project_dir):
    # The shipped file and the model defaults describe the same demo.
    assert load_config(project_dir=project_dir).model_dump() == Config().model_dump()


def test_lookup_order(project_dir, monkeypatch, tmp_path):
    project_file = write(project_dir / "sensor-manager.yaml", "seed: 1\n")
    assert load_config(project_dir=project_dir).seed == 1
    env_file = write(tmp_path / "env.yaml", "seed: 2\n")
    monkeypatch.setenv("SENSOR_MANAGER_CONFIG", str(env_file))
    assert load_config(project_dir=project_dir).seed == 2
    flag_file = write(tmp_path / "flag.yaml", "seed: 3\n")
    config = load_config(flag_file, project_dir)
    assert config.seed == 3 and config.source_path == str(flag_file)
    assert project_file.exists()


@pytest.mark.parametrize(
    ("file_value", "env_value", "flag_value", "expected"),
    [
        (None, None, None, 5),  # default
        (3, None, None, 3),  # file > default
        (3, "4", None, 4),  # environment > file, even though the file does not reference it
        (3, "4", 6, 6),  # flag > environment
        (None, None, 6, 6),
    ],
)
def test_precedence(project_dir, monkeypatch, file_value, env_value, flag_value, expected):
    if file_value is not None:
        write(project_dir / "sensor-manager.yaml", f"sensors_per_city: {file_value}\n")
    if env_value is not None:
        monkeypatch.setenv("SENSORS_PER_CITY", env_value)
    overrides = {"sensors_per_city": flag_value} if flag_value is not None else {}
    assert load_config(project_dir=project_dir, overrides=overrides).sensors_per_city == expected


def test_every_seed_variable_is_honoured(project_dir, monkeypatch):
    values = {
        "SENSORS_PER_CITY": "2", "MAX_CITIES": "3", "READINGS_PER_SECOND": "4.5", "ANOMALY_PROBABILITY": "0.1",
        "UPLOAD_INTERVAL": "12", "COSMOS_ENDPOINT": "https://127.0.0.1:8081/", "COSMOS_KEY": "czNjcjN0",
        "COSMOS_DATABASE": "Db", "COSMOS_CONTAINER": "Co", "S3_BUCKET_NAME": "bucket", "AWS_REGION": "eu-west-1",
        "AWS_PROFILE": "dev", "COSMOS_VERIFY_TLS": "false",  # allowed: the endpoint is loopback
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    # The file may still turn a sink off that the seed's variables would enable.
    write(project_dir / "sensor-manager.yaml", "uploader:\n  sinks:\n    cosmos: {enabled: false}\n    s3: {enabled: false}\n")
    config = load_config(project_dir=project_dir)
    sinks = config.uploader.sinks
    assert (config.sensors_per_city, config.max_cities, len(config.fleet_cities())) == (2, 3, 3)
    assert (config.simulation.readings_per_second, config.anomalies.probability) == (4.5, 0.1)
    assert config.uploader.interval_seconds == 12
    assert (sinks.cosmos.enabled, sinks.cosmos.endpoint, sinks.cosmos.key) == (False, values["COSMOS_ENDPOINT"], "czNjcjN0")
    assert (sinks.cosmos.database_name, sinks.cosmos.container_name, sinks.cosmos.partition_key) == ("Db", "Co", "/city")
    assert sinks.cosmos.verify_tls is False
    assert (sinks.s3.enabled, sinks.s3.bucket, sinks.s3.region, sinks.s3.profile) == (False, "bucket", "eu-west-1", "dev")


def test_cosmos_needs_both_endpoint_and_key(project_dir, monkeypatch):
    monkeypatch.setenv("COSMOS_ENDPOINT", "https://x")
    assert not load_config(project_dir=project_dir).uploader.sinks.cosmos.enabled


def test_a_configured_cosmos_sink_is_enabled_and_parquet_and_s3_are_accepted(project_dir, monkeypatch):
    config = write(project_dir / "sensor-manager.yaml", "uploader:\n  sinks:\n    cosmos: {endpoint: 'https://x', key: czNjcjN0}\n"
                   "    s3: {bucket: my-bucket, enabled: false}\n    parquet: {enabled: true}\n")
    sinks = load_config(project_dir=project_dir).uploader.sinks  # configured means enabled unless the file says otherwise
    assert (sinks.cosmos.enabled, sinks.parquet.enabled, sinks.s3.enabled) == (True, True, False)
    config.unlink()
    monkeypatch.setenv("S3_BUCKET_NAME", "my-bucket")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    s3 = load_config(project_dir=project_dir).uploader.sinks.s3
    assert (s3.enabled, s3.bucket, s3.region, s3.layout, s3.prefix) == (True, "my-bucket", "eu-west-1", "delta", "sensor-manager")


@pytest.mark.parametrize("setting, message", [
    ("bucket: No_Such", "uploader.sinks.s3.bucket: 'No_Such' is not a valid S3 bucket name"),
    ("bucket: my-bucket, prefix: 'a/../b'", "uploader.sinks.s3.prefix: must be a plain key prefix"),
    ("bucket: my-bucket, layout: csv", "uploader.sinks.s3.layout"),
])
def test_bad_s3_settings_are_one_line_naming_the_key(project_dir, setting, message):
    write(project_dir / "sensor-manager.yaml", f"uploader:\n  sinks:\n    s3: {{{setting}}}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(project_dir=project_dir)
    [problem] = raised.value.problems
    assert message in problem and "\n" not in problem


def test_dotenv_is_read_and_the_process_environment_wins(project_dir, monkeypatch):
    write(project_dir / ".env", "SENSORS_PER_CITY=7\nREADINGS_PER_SECOND=3\nexport SM_TEST_PROJECT=from-dotenv\n")
    write(project_dir / "sensor-manager.yaml", "project: ${SM_TEST_PROJECT:-fallback}\n")
    monkeypatch.setenv("READINGS_PER_SECOND", "9")
    config = load_config(project_dir=project_dir)
    assert config.sensors_per_city == 7 and config.simulation.readings_per_second == 9
    assert config.project == "from-dotenv"


def test_variable_expansion_with_defaults(project_dir, monkeypatch):
    write(project_dir / "sensor-manager.yaml",
          "project: ${SM_TEST_NAME:-demo}\nseed: ${SM_TEST_SEED}\ncities:\n  - name: ${SM_TEST_CITY:-Paris}\n")
    monkeypatch.setenv("SM_TEST_SEED", "42")
    config = load_config(project_dir=project_dir)
    assert (config.project, config.seed, config.cities[0].name) == ("demo", 42, "Paris")
    monkeypatch.setenv("SM_TEST_NAME", "other")
    assert load_config(project_dir=project_dir).project == "other"


def test_seed_alias_base_probability(project_dir):
    write(project_dir / "sensor-manager.yaml", "anomalies:\n  base_probability: 0.2\n")
    assert load_config(project_dir=project_dir).anomalies.probability == 0.2


def test_known_cities_get_coordinates_and_zone_case_insensitively(project_dir):
    write(project_dir / "sensor-manager.yaml",
          "cities:\n  - name: new york\n  - {name: Berlin, latitude: 52.6}\n  - {name: Springfield, latitude: 39.8, longitude: -89.6}\n")
    ny, berlin, springfield = load_config(project_dir=project_dir).cities
    assert (ny.name, ny.latitude, ny.timezone) == ("New York", 40.7128, "America/New_York")
    assert (berlin.latitude, berlin.longitude, berlin.timezone) == (52.6, 13.405, "Europe/Berlin")
    assert springfield.timezone == "UTC"


def test_the_bundled_table_has_the_seed_cities():
    from sensor_manager.config import bundled_cities

    seed_cities = ("Amsterdam Beijing Berlin Cairo Chicago Dallas Dubai London Madrid Moscow Mumbai Paris Rome Seoul "
                   "Singapore Sydney Tokyo Toronto Vancouver Zurich").split() + ["Hong Kong", "Mexico City", "New York", "San Francisco"]
    assert {c.casefold() for c in seed_cities} <= set(bundled_cities())


def test_select_cities_from_config_and_table(project_dir):
    config = load_config(project_dir=project_dir, overrides={"select_cities": "tokyo,PARIS,new_york"})
    assert [c.name for c in config.fleet_cities()] == ["New York", "Tokyo", "Paris"]
    assert [c.name for c in config.cities][-1] == "Paris"  # added from the bundled table


def test_max_cities_takes_the_first_n(project_dir):
    config = load_config(project_dir=project_dir, overrides={"max_cities": 2})
    assert [c.name for c in config.fleet_cities()] == ["Amsterdam", "Berlin"]


def test_errors_are_collected(project_dir):
    write(project_dir / "sensor-manager.yaml", "seed: x\nsensors_per_city: 0\n")
    with pytest.raises(ConfigError) as raised:
        load_config(project_dir=project_dir)
    assert len(raised.value.problems) == 2


def test_redact_hides_secrets_only():
    data = {"cosmos": {"key": "k", "partition_key": "/city", "endpoint": "https://x"},
            "aws": [{"aws_secret_access_key": "s", "aws_access_key_id": "AKIA", "region": "r"}], "empty": {"key": None}}
    assert redact(data) == {"cosmos": {"key": "***", "partition_key": "/city", "endpoint": "https://x"},
                            "aws": [{"aws_secret_access_key": "***", "aws_access_key_id": "***", "region": "r"}],
                            "empty": {"key": None}}


def test_redacted_config(project_dir, monkeypatch):
    monkeypatch.setenv("COSMOS_ENDPOINT", "https://x")
    monkeypatch.setenv("COSMOS_KEY", "dG9wc2VjcmV0")
    write(project_dir / "sensor-manager.yaml", "uploader:\n  sinks:\n    cosmos: {enabled: false}\n")
    shown = load_config(project_dir=project_dir).redacted()
    assert shown["uploader"]["sinks"]["cosmos"]["key"] == "***" and "dG9wc2VjcmV0" not in str(shown)
    assert "source_path" not in shown and "selected_cities" not in shown


@pytest.mark.slow
def test_bundled_config_is_found_when_installed_without_the_checkout(tmp_path):
    """A non-editable install (package data `sensor_manager.config_data`) run far from the repo."""
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build the project offline here: {build.stderr[-300:]}")
    probe = ("import sensor_manager.config as c; cfg = c.load_config(project_dir='.'); "
             "print(c.__file__); print(cfg.source_path); print(len(cfg.cities))")
    import sysconfig

    env = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = '{env['PYTHONPATH']}'.split(':'); {probe}"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    module_file, source, count = result.stdout.split()
    assert module_file.startswith(str(target)) and source.startswith(str(target / "sensor_manager" / "config_data"))
    assert count == "5"


def test_cities_may_be_plain_names(project_dir):
    write(project_dir / "sensor-manager.yaml", "cities: [Rome, madrid]\n")
    config = load_config(project_dir=project_dir, overrides={"select_cities": "MADRID"})
    assert [c.name for c in config.cities] == ["Rome", "Madrid"]
    assert [c.name for c in config.fleet_cities()] == ["Madrid"]


def test_a_value_below_a_lower_only_bound_is_a_message(project_dir):
    write(project_dir / "sensor-manager.yaml",
          "normal_parameters:\n  temperature: {mean: 65, std_dev: 0, min: 50, max: 80}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(project_dir=project_dir)
    assert "must be > 0 (got 0)" in str(raised.value)


def test_callers_use_only_the_package_surface():
    """Code outside sensor_manager/config/ imports names the package exports, never its modules, so they can move."""
    import ast

    import sensor_manager.config as package

    wrong = []
    for top in ("sensor_manager", "uploader", "tests", "benchmarks"):
        for path in (REPO / top).rglob("*.py"):
            if (REPO / "sensor_manager" / "config") in path.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sensor_manager.config."):
                    wrong.append(f"{path.relative_to(REPO)}: from {node.module}")
                elif isinstance(node, ast.ImportFrom) and node.module == "sensor_manager.config":
                    wrong += [f"{path.relative_to(REPO)}: {a.name}" for a in node.names if a.name not in package.__all__]
    assert not wrong, wrong


@pytest.mark.parametrize("setting, message", [
    ("duplicate: {rate: 2}", "faults.duplicate.rate: must be between 0 and 0.5 (got 2)"),
    ("clock_skew: {drift: 1}", "faults.clock_skew.drift: unknown key 'drift'"),
    ("duplicate: {rate: 0.5}, out_of_order: {rate: 0.5}",
     "faults: duplicate.rate + out_of_order.rate + offline_burst.rate is 1.02; keep it at most 0.9"),
])
def test_bad_fault_settings_are_one_line_naming_the_key(project_dir, setting, message):
    write(project_dir / "sensor-manager.yaml", f"faults: {{enabled: true, {setting}}}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(project_dir=project_dir)
    [problem] = raised.value.problems
    assert problem.endswith(message) and "\n" not in problem


def test_faults_are_off_by_default_and_reach_the_simulator(project_dir):
    from sensor_manager.layout import ProjectLayout
    from sensor_manager.simulator.hosting import HostingRequest, plan_hosting

    assert load_config(project_dir=project_dir).faults.enabled is False
    write(project_dir / "sensor-manager.yaml", "faults: {enabled: true, duplicate: {rate: 0.2}}\n")
    config = load_config(project_dir=project_dir)
    _, options = plan_hosting(config, ProjectLayout(project_dir), HostingRequest())
    assert options.faults.enabled and options.faults.duplicate.rate == 0.2
