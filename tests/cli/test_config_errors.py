"""Every kind of bad config input through the CLI: exit 2, a message naming where/key/problem,
no traceback, and the project directory exactly as it was."""
from __future__ import annotations

from pathlib import Path

import pytest

from sensor_manager.cli import app

ALIAS_BOMB = """
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

# (config text, expected fragments of the message); each line is `<file>: <key.path>: <problem>`.
BAD_FILES = {
    "yaml-syntax": ("cities: [Berlin\nseed: 1\n", ["invalid YAML: line"]),
    "root-list": ("- Berlin\n- Paris\n", ["the top level must be a mapping of keys, not a list"]),
    "root-scalar": ("just a string\n", ["the top level must be a mapping of keys, not a str"]),
    "alias-bomb": (ALIAS_BOMB, ["(a YAML alias bomb?)"]),
    "many-aliases": ("a: &a 1\nb: [" + ", ".join(["*a"] * 150) + "]\n", ["more than 100 aliases (a YAML alias bomb?)"]),
    "duplicate-key": ("seed: 1\nseed: 2\n", ["duplicate key 'seed'"]),
    "nan": ("simulation:\n  readings_per_second: .nan\n", ["simulation.readings_per_second: NaN and infinity are not allowed"]),
    "inf": ("anomalies:\n  probability: .inf\n", ["anomalies.probability: NaN and infinity are not allowed"]),
    "nan-string": ("simulation:\n  readings_per_second: 'nan'\n", ["simulation.readings_per_second:"]),
    "unknown-key": ("sensor_per_city: 3\n", ["sensor_per_city: unknown key 'sensor_per_city'; did you mean 'sensors_per_city'?"]),
    "unknown-nested-key": ("simulation:\n  readings_per_secnd: 2\n", ["simulation.readings_per_secnd: unknown key", "did you mean 'readings_per_second'?"]),
    "unknown-anomaly-type": ("anomalies:\n  types:\n    spikes: {weight: 2}\n", ["anomalies.types.spikes:"]),
    "internal-key": ("source_path: /etc\n", ["source_path: unknown key 'source_path'"]),
    "wrong-type": ("sensors_per_city: many\n", ["sensors_per_city: Input should be a valid integer", "'many'"]),
    "wrong-section-type": ("simulation: 5\n", ["simulation: Input should be a valid dictionary"]),
    "too-small": ("sensors_per_city: 0\n", ["sensors_per_city: must be between 1 and 10000 (got 0)"]),
    "too-large": ("sensors_per_city: 10001\n", ["sensors_per_city: must be between 1 and 10000 (got 10001)"]),
    "rate-zero": ("simulation:\n  readings_per_second: 0\n", ["simulation.readings_per_second: must be > 0 and <= 10000"]),
    "latitude": ("cities:\n  - {name: Nowhere, latitude: 91, longitude: 0}\n", ["cities[0].latitude: must be between -90 and 90 (got 91)"]),
    "longitude": ("cities:\n  - {name: Nowhere, latitude: 0, longitude: -181}\n", ["cities[0].longitude: must be between -180 and 180"]),
    "runtime": ("runtime: kubernetes\n", ["runtime: Input should be 'auto', 'docker', 'local' or 'swarm'"]),
    "duplicate-city": ("cities:\n  - name: Berlin\n  - name: Paris\n  - name: berlin\n", ["cities: cities[2]: 'Berlin' is listed twice (also cities[0])"]),
    "slug-clash": (
        "cities:\n  - name: New York\n  - {name: New_York, latitude: 40.7, longitude: -74}\n",
        ["'New_York' and 'New York' (cities[0]) both become New_York; rename one"],
    ),
    "unknown-city": ("cities:\n  - name: Atlantis\n", ["cities[0]: unknown city 'Atlantis': not in the bundled city table; give its latitude and longitude"]),
    "dotdot-city": ("cities:\n  - {name: '..', latitude: 1, longitude: 1}\n", ["cities[0].name:", "contains '..'"]),
    "slash-city": ("cities:\n  - {name: 'a/../../etc', latitude: 1, longitude: 1}\n", ["cities[0].name:", "path separator"]),
    "nul-city": ('cities:\n  - {name: "Ber\\0lin", latitude: 1, longitude: 1}\n', ["cities[0].name:", "NUL"]),
    "unknown-zone": ("cities:\n  - {name: Berlin, timezone: Europe/Berln}\n", ["cities[0].timezone:", "unknown IANA time zone 'Europe/Berln'", "did you mean 'Europe/Berlin'?"]),
    "zone-escape": ("cities:\n  - {name: Berlin, timezone: ../../etc/passwd}\n", ["unknown IANA time zone"]),
    "unset-variable": ("project: ${SM_TEST_UNSET_VARIABLE}\n", ["project: environment variable SM_TEST_UNSET_VARIABLE is not set"]),
    "bad-metric-bounds": ("normal_parameters:\n  temperature: {mean: 100, std_dev: 1, min: 0, max: 50}\n", ["normal_parameters.temperature:", "mean (100.0) must lie within"]),
}


@pytest.fixture
def invoke(runner, project_dir, tree_listing):
    """Run a command expecting a usage error; returns stderr after checking the invariants."""

    def run(*args: str, env: dict[str, str] | None = None) -> str:
        before = tree_listing(project_dir)
        result = runner.invoke(app, [*args, "--project-dir", str(project_dir)], env=env)
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        assert "Traceback" not in result.output and "Traceback" not in result.stderr
        assert tree_listing(project_dir) == before
        return result.stderr

    return run


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize("command", [("config", "validate"), ("plan",)])
def test_bad_config_file(invoke, project_dir, case, command):
    text, fragments = BAD_FILES[case]
    config = project_dir / "bad.yaml"
    config.write_text(text, encoding="utf-8")
    stderr = invoke(*command, "--config", str(config))
    assert stderr.startswith(f"error: {config}: ")
    for fragment in fragments:
        assert fragment in stderr


def test_all_problems_are_reported_at_once(invoke, project_dir):
    config = project_dir / "bad.yaml"
    config.write_text("sensors_per_city: 0\nseed: -1\nsimulation: {readings_per_second: .inf}\nbogus: 1\n")
    lines = invoke("config", "validate", "--config", str(config)).splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"error: {config}: ") for line in lines)
    assert {line.split(": ")[2] for line in lines} == {"sensors_per_city", "seed", "simulation.readings_per_second", "bogus"}


def test_the_project_file_is_found_and_named(invoke, project_dir):
    (project_dir / "sensor-manager.yaml").write_text("sensors_per_city: -3\n")
    assert f"error: {project_dir / 'sensor-manager.yaml'}: sensors_per_city: must be between 1 and 10000" in invoke("plan")


def test_named_missing_config_file(invoke, project_dir):
    stderr = invoke("plan", "--config", str(project_dir / "nope.yaml"))
    assert stderr == f"error: {project_dir / 'nope.yaml'}: config file not found (given by --config)\n"


def test_missing_file_named_by_the_environment(invoke, project_dir):
    stderr = invoke("plan", env={"SENSOR_MANAGER_CONFIG": str(project_dir / "gone.yaml")})
    assert "gone.yaml: config file not found (given by $SENSOR_MANAGER_CONFIG)" in stderr


def test_config_that_is_a_directory(invoke, project_dir):
    (project_dir / "dir.yaml").mkdir()
    assert "cannot read config" in invoke("config", "validate", "--config", str(project_dir / "dir.yaml"))


def test_config_that_is_not_utf8(invoke, project_dir):
    (project_dir / "latin.yaml").write_bytes("project: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8 text" in invoke("config", "validate", "--config", str(project_dir / "latin.yaml"))


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("SENSORS_PER_CITY", "abc", "environment variable SENSORS_PER_CITY='abc': sensors_per_city: Input should be a valid integer"),
        ("SENSORS_PER_CITY", "0", "environment variable SENSORS_PER_CITY='0': sensors_per_city: must be between 1 and 10000"),
        ("MAX_CITIES", "-1", "environment variable MAX_CITIES='-1': max_cities:"),
        ("READINGS_PER_SECOND", "nan", "environment variable READINGS_PER_SECOND='nan': simulation.readings_per_second:"),
        ("ANOMALY_PROBABILITY", "2", "environment variable ANOMALY_PROBABILITY='2': anomalies.probability: must be between 0 and 1"),
        ("UPLOAD_INTERVAL", "soon", "environment variable UPLOAD_INTERVAL='soon': uploader.interval_seconds:"),
    ],
)
def test_invalid_environment_value_names_the_variable(invoke, variable, value, fragment):
    assert fragment in invoke("config", "validate", env={variable: value})


def test_invalid_value_from_the_dotenv_file_names_the_variable(invoke, project_dir):
    (project_dir / ".env").write_text("SENSORS_PER_CITY=lots\n")
    assert "environment variable SENSORS_PER_CITY='lots'" in invoke("plan")


def test_invalid_expanded_value_names_the_file_and_variable(invoke, project_dir, monkeypatch):
    monkeypatch.setenv("SM_TEST_SEED", "minus-one")
    config = project_dir / "c.yaml"
    config.write_text("seed: ${SM_TEST_SEED}\n")
    assert f"{config} (via ${{SM_TEST_SEED}}='minus-one'): seed: Input should be a valid integer" in invoke(
        "plan", "--config", str(config)
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--sensors-per-city", "0"], "error: --sensors-per-city: must be between 1 and 10000 (got 0)\n"),
        (["--sensors-per-city", "10001"], "error: --sensors-per-city: must be between 1 and 10000 (got 10001)\n"),
        (["--max-cities", "0"], "error: --max-cities: must be between 1 and 10000 (got 0)\n"),
        (["--rate", "0"], "error: --rate: must be > 0 and <= 10000 (got 0.0)\n"),
        (["--readings-per-second", "20000"], "error: --rate: must be > 0 and <= 10000 (got 20000.0)\n"),
        (["--rate", "nan"], "error: --rate: NaN and infinity are not allowed\n"),
        (["--anomaly-probability", "1.5"], "error: --anomaly-probability: must be between 0 and 1 (got 1.5)\n"),
        (["--seed", "-1"], "error: --seed: must be between 0 and 9223372036854775807 (got -1)\n"),
        (["--cities", "Atlantis"], "error: --cities: unknown city 'Atlantis' (configured or bundled cities only)\n"),
        (["--cities", "Berln"], "error: --cities: unknown city 'Berln'; did you mean 'Berlin'? (configured or bundled cities only)\n"),
        (["--cities", " , "], "error: --cities: name at least one city\n"),
    ],
)
def test_bad_flag_values_name_the_flag(invoke, flags, expected):
    assert invoke("plan", *flags) == expected


def test_flag_and_file_errors_together(invoke, project_dir):
    (project_dir / "sensor-manager.yaml").write_text("bogus: 1\n")
    lines = invoke("plan", "--sensors-per-city", "0").splitlines()
    assert any(line.startswith("error: --sensors-per-city:") for line in lines)
    assert any("bogus: unknown key" in line for line in lines)


def test_validate_json_reports_errors_as_one_document(runner, project_dir):
    import json

    (project_dir / "sensor-manager.yaml").write_text("sensors_per_city: 0\n")
    result = runner.invoke(app, ["config", "validate", "--json", "--project-dir", str(project_dir)])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["valid"] is False and document["schema_version"] == 1
    assert document["errors"] == [f"{project_dir / 'sensor-manager.yaml'}: sensors_per_city: must be between 1 and 10000 (got 0)"]


def test_empty_file_means_all_defaults(runner, project_dir):
    (project_dir / "sensor-manager.yaml").write_text("")
    result = runner.invoke(app, ["plan", "--json", "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.stderr
    assert '"sensors": 25' in result.stdout


def test_messages_say_where_for_a_relative_path(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("rel.yaml").write_text("seed: x\n")
    result = runner.invoke(app, ["plan", "--config", "rel.yaml", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr.startswith("error: rel.yaml: seed:")
