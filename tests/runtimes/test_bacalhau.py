"""Bacalhau job specs: the golden render of the default plan, one daemon job per city, no secrets, the
offline validator's table of invalid specs, and submit/status against the stand-in CLI on PATH."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from fleetcore.errors import ConfigError, ProcessFailedError, UsageError
from sensor_manager.config import Config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import build_plan
from sensor_manager.runtimes import bacalhau
from sensor_manager.runtimes import compose_render as cr
from sensor_manager.runtimes.bacalhau_models import job_problems, spec_problems
from sensor_manager.runtimes.base import plan_services

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "bacalhau-default.yaml"
STANDIN = Path(__file__).parent / "bacalhau_standin"
# Rewrite the golden file only on request, then review the diff: UPDATE_GOLDEN=1 pytest tests/runtimes/test_bacalhau.py
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
IMAGE = "sensor-manager:0.1.0-000000000000"
SECRET = "c0sm0s-s3cr3t-Value=="


@pytest.fixture
def plan():
    return build_plan(Config())


def _inputs(secrets: tuple[str, ...] = ()) -> bacalhau.JobInputs:
    return bacalhau.JobInputs(image=IMAGE, node_root="/srv/sensor-manager", secrets=secrets)


def _all_specs(plan, config=None, secrets=()) -> str:
    jobs = bacalhau.render_jobs(plan, config or Config(), _inputs(secrets))
    return "---\n".join(bacalhau.dump_job(document) for document in jobs.values())


def test_default_plan_renders_the_golden_specs(plan):
    text = _all_specs(plan)
    if UPDATE:
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.is_file(), f"{GOLDEN} is missing; create it with UPDATE_GOLDEN=1 and review it"
    assert text == GOLDEN.read_text(encoding="utf-8"), "the render changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff"


def test_every_rendered_spec_passes_the_validator(plan):
    for document in bacalhau.render_jobs(plan, Config(), _inputs(("cosmos_key",))).values():
        assert job_problems(yaml.safe_load(bacalhau.dump_job(document))) == []


def test_one_daemon_job_per_city_pinned_by_the_city_label_running_the_plans_sensors(plan):
    jobs = bacalhau.render_jobs(plan, Config(), _inputs())
    assert list(jobs) == list(plan.by_city())
    for safe_city, job in jobs.items():
        assert job["Type"] == "daemon"
        assert job["Constraints"] == [{"Key": "io.sensor-manager.city", "Operator": "=", "Values": [safe_city]}]
        sensors, uploader = job["Tasks"]
        planned = [s.sensor_id for s in plan.by_city()[safe_city]]
        command = sensors["Engine"]["Params"]["Entrypoint"]
        assert [command[i + 1] for i, arg in enumerate(command) if arg == "--sensor-id"] == planned
        assert sensors["Network"] == {"Type": "None"}
        assert {s["Engine"]["Params"]["Image"] for s in (sensors, uploader)} == {IMAGE}
        data = {s["Target"]: s["Source"]["Params"] for s in uploader["InputSources"]}[f"/project/data/{safe_city}"]
        assert data == {"SourcePath": f"/srv/sensor-manager/data/{safe_city}", "ReadWrite": False}


def test_commands_are_the_compose_renders(plan):
    services = {(s.role, s.safe_city): s for s in plan_services(plan, None)}
    job = bacalhau.render_job(plan, Config(), "Berlin", _inputs())
    assert job["Tasks"][0]["Engine"]["Params"]["Entrypoint"] == cr.sensor_command(services[("sensor", "Berlin")])
    assert job["Tasks"][1]["Engine"]["Params"]["Entrypoint"] == cr.uploader_command(services[("uploader", "Berlin")])


def test_secrets_stay_on_the_node_as_files_never_in_the_spec(plan):
    config = Config()
    config.uploader.sinks.cosmos.enabled = True
    config.uploader.sinks.cosmos.endpoint = "https://example.documents.azure.com:443/"
    config.uploader.sinks.cosmos.key = SECRET
    secrets = bacalhau.secret_names(config, {})
    assert secrets == ("cosmos_key",)
    text = _all_specs(plan, config, secrets)
    assert SECRET not in text
    uploader = bacalhau.render_job(plan, config, "Berlin", _inputs(secrets))["Tasks"][1]
    assert uploader["Env"] == {"COSMOS_KEY_FILE": "/run/secrets/cosmos_key"}
    assert {"Source": {"Type": "localDirectory", "Params": {"SourcePath": "/srv/sensor-manager/state/secrets/cosmos_key", "ReadWrite": False}},
            "Target": "/run/secrets/cosmos_key"} in uploader["InputSources"]
    assert uploader["Network"] == {"Type": "Full"}  # cosmos is remote


def test_a_city_outside_the_plan_is_a_usage_error(plan):
    with pytest.raises(UsageError, match="'Atlantis' is not in the plan"):
        bacalhau.render_job(plan, Config(), "Atlantis", _inputs())


def test_write_specs_writes_one_file_per_city_and_drops_stale_ones(tmp_path, plan):
    layout = ProjectLayout.at(tmp_path)
    stale = bacalhau.spec_dir(layout) / "gone-city.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("Name: x\n")
    result = bacalhau.write_specs(layout, plan, Config(), _inputs())
    assert sorted(p.name for p in bacalhau.spec_dir(layout).glob("*.yaml")) == sorted(p.name for p in result.specs.values())
    assert not stale.exists()
    assert (layout.state / "compose" / "config" / "uploader" / "sensor-manager.yaml").is_file()
    assert bacalhau.validate_files(list(result.specs.values()))


# ---- the validator ---------------------------------------------------------------------------------

VALID = {
    "Name": "sensor-demo-berlin",
    "Type": "daemon",
    "Constraints": [{"Key": "io.sensor-manager.city", "Operator": "=", "Values": ["Berlin"]}],
    "Tasks": [{"Name": "sensors", "Engine": {"Type": "docker", "Params": {"Image": IMAGE}},
               "InputSources": [{"Source": {"Type": "localDirectory", "Params": {"SourcePath": "/srv/d"}}, "Target": "/project/data"}]}],
}


def _spec(change) -> dict:
    document = copy.deepcopy(VALID)
    change(document)
    return document


def _task(document) -> dict:
    return document["Tasks"][0]


INVALID = [
    ("type", lambda d: d.update(Type="cron"), "Type: job Type 'cron' is not one of batch, ops, daemon, service"),
    ("negative count", lambda d: d.update(Type="service", Count=-1), "Count: Count must be >= 0 (got -1)"),
    ("daemon count", lambda d: d.update(Count=2), "(top level): Count must be 0 or 1 for a daemon job"),
    ("ops count", lambda d: d.update(Type="ops", Count=3), "(top level): Count must be 0 or 1 for a ops job"),
    ("no tasks", lambda d: d.update(Tasks=[]), "Tasks: a job needs at least one task"),
    ("blank key", lambda d: d["Constraints"][0].update(Key="  "), "Constraints[0].Key: Key must not be blank"),
    ("in without values", lambda d: d["Constraints"][0].update(Operator="in", Values=[]),
     "Constraints[0]: operator 'in' needs at least one value in Values"),
    ("notin without values", lambda d: d["Constraints"][0].update(Operator="notin", Values=[]),
     "Constraints[0]: operator 'notin' needs at least one value in Values"),
    ("exists with a value", lambda d: d["Constraints"][0].update(Operator="exists"),
     "Constraints[0]: operator 'exists' takes no Values (got 1)"),
    ("! with a value", lambda d: d["Constraints"][0].update(Operator="!"), "Constraints[0]: operator '!' takes no Values (got 1)"),
    ("= with two values", lambda d: d["Constraints"][0].update(Values=["Berlin", "Paris"]),
     "Constraints[0]: operator '=' needs exactly one value in Values (got 2)"),
    ("gt without a value", lambda d: d["Constraints"][0].update(Operator="gt", Values=[]),
     "Constraints[0]: operator 'gt' needs exactly one value in Values (got 0)"),
    ("unknown operator", lambda d: d["Constraints"][0].update(Operator="like"),
     "Constraints[0].Operator: operator 'like' is not one of in, notin, exists, !, =, ==, !=, gt, lt"),
    ("blank task name", lambda d: _task(d).update(Name=""), "Tasks[0].Name: task Name must not be blank"),
    ("blank engine type", lambda d: _task(d)["Engine"].update(Type=" "), "Tasks[0].Engine.Type: Type must not be blank"),
    ("lowercase env", lambda d: _task(d).update(Env={"path": "x"}),
     "Tasks[0].Env: env name 'path' must be uppercase letters, digits and '_', starting with a letter"),
    ("env starting with a digit", lambda d: _task(d).update(Env={"1X": "x"}),
     "Tasks[0].Env: env name '1X' must be uppercase letters, digits and '_', starting with a letter"),
    ("reserved env", lambda d: _task(d).update(Env={"BACALHAU_X": "x"}),
     "Tasks[0].Env: env name 'BACALHAU_X' must not start with BACALHAU_ (reserved by the engine)"),
    ("empty env value", lambda d: _task(d).update(Env={"X": ""}), "Tasks[0].Env: env 'X' must not have an empty value"),
    ("blank target", lambda d: _task(d)["InputSources"][0].update(Target=""), "Tasks[0].InputSources[0].Target: Target must not be blank"),
    ("repeated target", lambda d: _task(d)["InputSources"].append(copy.deepcopy(_task(d)["InputSources"][0])),
     "Tasks[0].InputSources: input source Target '/project/data' appears more than once"),
    ("repeated result name", lambda d: _task(d).update(ResultPaths=[{"Name": "out", "Path": "/a"}, {"Name": "out", "Path": "/b"}]),
     "Tasks[0].ResultPaths: result path Name 'out' appears more than once"),
    ("repeated result path", lambda d: _task(d).update(ResultPaths=[{"Name": "a", "Path": "/out"}, {"Name": "b", "Path": "/out"}]),
     "Tasks[0].ResultPaths: result path Path '/out' appears more than once"),
    ("blank result name", lambda d: _task(d).update(ResultPaths=[{"Name": "", "Path": "/a"}]),
     "Tasks[0].ResultPaths[0].Name: Name must not be blank"),
    ("relative result path", lambda d: _task(d).update(ResultPaths=[{"Name": "a", "Path": "out"}]),
     "Tasks[0].ResultPaths[0].Path: Path 'out' must be absolute"),
    ("domains without HTTP", lambda d: _task(d).update(Network={"Type": "Full", "Domains": ["example.com"]}),
     "Tasks[0].Network: Domains are allowed only with network Type HTTP (Type is Full)"),
    ("unknown network", lambda d: _task(d).update(Network={"Type": "Bridged"}),
     "Tasks[0].Network.Type: network Type 'Bridged' is not one of None, Full, HTTP"),
    ("unknown key", lambda d: d.update(Contraints=[]), "Contraints: unknown key; did you mean 'Constraints'?"),
    ("unknown task key", lambda d: _task(d).update(InputSource=[]), "Tasks[0].InputSource: unknown key; did you mean 'InputSources'?"),
    ("wrong case key", lambda d: _task(d).update(env={}), "Tasks[0].env: unknown key; did you mean 'Env'?"),
    ("missing engine", lambda d: _task(d).pop("Engine"), "Tasks[0].Engine: required key is missing"),
]


def test_the_valid_fixture_is_valid():
    assert job_problems(copy.deepcopy(VALID)) == []


@pytest.mark.parametrize(("change", "expected"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_specs_are_rejected_with_the_right_message(change, expected):
    problems = job_problems(_spec(change))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_the_http_network_takes_domains_and_network_types_ignore_case():
    document = _spec(lambda d: _task(d).update(Network={"Type": "http", "Domains": ["example.com"]}))
    assert job_problems(document) == []


def test_yaml_errors_and_non_mappings_are_one_line_each():
    assert spec_problems("Name: [unclosed\n")[0].startswith("line ")
    assert spec_problems("- a\n- b\n") == ["(top level): a job spec is a mapping, not list"]


def test_validate_files_reports_every_problem_of_every_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_spec(lambda d: d.update(Type="cron", Tasks=[]))))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(VALID))
    with pytest.raises(ConfigError) as caught:
        bacalhau.validate_files([good, bad, tmp_path / "missing.yaml"])
    assert [p.split(": ", 1)[0] for p in caught.value.problems] == [str(bad), str(bad), str(tmp_path / "missing.yaml")]


# ---- submit and status against the stand-in ---------------------------------------------------------

@pytest.fixture
def standin(monkeypatch, tmp_path) -> Path:
    log = tmp_path / "bacalhau-argv.jsonl"
    monkeypatch.setenv("PATH", f"{STANDIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("BACALHAU_STANDIN_LOG", str(log))
    return log


def _rendered(tmp_path, plan) -> tuple[ProjectLayout, list[Path]]:
    layout = ProjectLayout.at(tmp_path / "project")
    result = bacalhau.write_specs(layout, plan, Config(), _inputs())
    return layout, list(result.specs.values())


def test_submit_runs_one_job_run_per_spec_and_records_the_ids(tmp_path, plan, standin):
    layout, paths = _rendered(tmp_path, plan)
    jobs = bacalhau.submit(layout, paths)
    calls = [json.loads(line) for line in standin.read_text().splitlines()]
    assert calls == [["job", "run", "--wait=false", "--id-only", str(path)] for path in paths]
    assert set(jobs) == {path.name for path in paths} and all(v.startswith("j-") for v in jobs.values())
    assert bacalhau.read_jobs(layout) == jobs


def test_status_reads_job_describe_json(tmp_path, plan, standin):
    layout, paths = _rendered(tmp_path, plan)
    jobs = bacalhau.submit(layout, paths[:1])
    rows = bacalhau.status(layout)
    assert json.loads(standin.read_text().splitlines()[-1]) == ["job", "describe", "--output", "json", jobs[paths[0].name]]
    assert [row.to_dict() for row in rows] == [{
        "spec": paths[0].name, "job_id": jobs[paths[0].name], "name": "sensor-demo-amsterdam", "state": "Running",
        "executions": [{"node": "n-edge-amsterdam-1", "state": "Running"}],
    }]


def test_a_failing_cli_is_a_runtime_failure_naming_the_call(tmp_path, plan, standin, monkeypatch):
    layout, paths = _rendered(tmp_path, plan)
    monkeypatch.setenv("BACALHAU_STANDIN_FAIL", "1")
    with pytest.raises(ProcessFailedError, match=r"`bacalhau job run` failed \(exit 1\): Error: failed to connect"):
        bacalhau.submit(layout, paths)


def test_an_invalid_spec_is_never_submitted(tmp_path, plan, standin):
    layout, paths = _rendered(tmp_path, plan)
    paths[1].write_text(paths[1].read_text().replace("Type: daemon", "Type: cron"))
    with pytest.raises(ConfigError, match="job Type 'cron'"):
        bacalhau.submit(layout, paths)
    assert not standin.exists()


def test_no_cli_on_path_names_the_remedy(tmp_path, plan, monkeypatch):
    layout, paths = _rendered(tmp_path, plan)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="no `bacalhau` CLI on PATH; install the Bacalhau CLI"):
        bacalhau.submit(layout, paths)


def test_status_before_submit_is_a_usage_error(tmp_path, standin):
    with pytest.raises(UsageError, match="no submitted jobs; run `bacalhau submit` first"):
        bacalhau.status(ProjectLayout.at(tmp_path))
