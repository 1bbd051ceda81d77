"""The compose stack rendered from a fixed plan: golden files, least privilege, no secrets, stable names."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from fleetcore.errors import UsageError
from sensor_manager.config import Config
from sensor_manager.layout import ProjectLayout
from sensor_manager.plan import FleetPlan
from sensor_manager.runtimes.compose_render import (
    StackInputs,
    collect_secrets,
    container_user,
    default_project_name,
    dump_stack,
    prepare_mounts,
    render_stack,
    role_config,
    validate_project_name,
    write_role_configs,
    write_secrets,
)
from sensor_manager.runtimes.compose_settings import DockerSettings

HERE = Path(__file__).parent
GOLDEN = HERE.parent / "golden"
SECRET = "c0sm0s-s3cr3t-Value=="
# Rewrite golden files only on request, then review the diff: UPDATE_GOLDEN=1 pytest tests/docker
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.fixture
def plan() -> FleetPlan:
    return FleetPlan.from_dict(json.loads((HERE / "fixtures" / "plan-2x2.json").read_text()))


def _cosmos_config() -> Config:
    config = Config()
    config.uploader.sinks.cosmos.enabled = True
    config.uploader.sinks.cosmos.endpoint = "https://example.documents.azure.com:443/"
    config.uploader.sinks.cosmos.key = SECRET
    return config


def _inputs(settings: DockerSettings | None = None, secrets: tuple[str, ...] = ()) -> StackInputs:
    return StackInputs(
        layout=ProjectLayout(Path("/srv/sensor-project")),
        project_name="sm-sensor-project-abc123",
        image="sensor-manager:0.1.0-000000000000",
        user="1000:1000",
        settings=settings or DockerSettings(),
        secrets=secrets,
    )


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.is_file(), f"{path} is missing; create it with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{name} differs from the render; if intended, rerun with UPDATE_GOLDEN=1 and review the diff"


def test_render_matches_golden_file(plan):
    _check_golden("compose.yml", dump_stack(render_stack(plan, Config(), _inputs())))


def test_grouped_render_with_secret_matches_golden_file(plan):
    text = dump_stack(render_stack(plan, _cosmos_config(), _inputs(DockerSettings(sensors_per_container=2), ("cosmos_key",))))
    _check_golden("compose-grouped-secrets.yml", text)
    assert SECRET not in text


def test_services_follow_the_naming_contract(plan):
    document = render_stack(plan, Config(), _inputs())
    assert list(document["services"]) == [
        "sensor-amsterdam-hgo7", "sensor-amsterdam-06vw", "sensor-new-york-0lr3", "sensor-new-york-96ci",
        "uploader-amsterdam", "uploader-new-york",
    ]
    for spec in document["services"].values():
        assert "container_name" not in spec
        assert {"io.sensor-manager.project", "io.sensor-manager.role", "io.sensor-manager.city", "io.sensor-manager.plan-hash"} <= set(spec["labels"])
    assert document["services"]["sensor-new-york-0lr3"]["labels"]["io.sensor-manager.sensor-id"] == "New_York_0LR3"


def test_every_service_is_least_privilege(plan):
    document = render_stack(plan, Config(), _inputs())
    for name, spec in document["services"].items():
        assert spec["network_mode"] == "none", name  # no sink here needs a network: no default bridge either
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in spec["security_opt"]
        assert spec["user"] == "1000:1000" and spec["mem_limit"]
        assert spec["restart"] == "on-failure:5" and spec["healthcheck"]["test"][0] == "CMD"
        for mount in spec["volumes"]:
            assert mount["type"] == "bind"
            assert Path(mount["source"]).is_relative_to("/srv/sensor-project"), mount
            if "/state/compose/config/" in mount["source"]:
                assert mount["read_only"] is True and mount["source"].endswith(f"config/{spec['labels']['io.sensor-manager.role']}")


def test_uploader_mounts_only_its_city_read_only(plan):
    spec = render_stack(plan, Config(), _inputs())["services"]["uploader-new-york"]
    data = [m for m in spec["volumes"] if "/data" in m["target"]]
    assert data == [{"type": "bind", "source": "/srv/sensor-project/data/New_York", "target": "/project/data/New_York",
                     "read_only": True, "bind": {"create_host_path": False}}]
    assert not any(m["target"] in ("/project/state", "/project/state/secrets") for m in spec["volumes"])


def test_a_network_sink_gets_the_host_network_and_secrets_only_as_files(plan):
    document = render_stack(plan, _cosmos_config(), _inputs(secrets=("cosmos_key",)))
    uploader = document["services"]["uploader-amsterdam"]
    assert uploader["network_mode"] == "host"
    assert uploader["secrets"] == [{"source": "cosmos_key", "target": "cosmos_key"}]
    assert uploader["environment"] == {"COSMOS_KEY_FILE": "/run/secrets/cosmos_key"}
    assert document["secrets"] == {"cosmos_key": {"file": "/srv/sensor-project/state/secrets/cosmos_key"}}
    assert document["services"]["sensor-amsterdam-hgo7"]["network_mode"] == "none"


def test_no_memory_limit_where_the_engine_cannot_enforce_one(plan):
    inputs = StackInputs(**{**_inputs().__dict__, "memory_limit": False})
    assert all("mem_limit" not in spec for spec in render_stack(plan, Config(), inputs)["services"].values())


def test_role_configs_carry_no_secrets():
    config = _cosmos_config()
    assert SECRET not in json.dumps(role_config(config, "uploader"))
    assert "uploader" not in role_config(config, "sensor")
    assert collect_secrets(config, {}) == {"cosmos_key": SECRET}
    assert collect_secrets(Config(), {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}) == {}


def test_s3_credentials_reach_uploaders_as_a_file_and_sdk_variables_by_name_only(plan):
    config = Config()
    config.uploader.sinks.s3.enabled = True
    config.uploader.sinks.s3.bucket = "fleet-bucket"
    environ = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "eu-west-1"}
    secrets = collect_secrets(config, environ)
    assert list(secrets) == ["aws_credentials"] and SECRET in secrets["aws_credentials"]
    text = dump_stack(render_stack(plan, config, _inputs(secrets=tuple(secrets))))
    assert SECRET not in text and "AKIAEXAMPLE" not in text and "eu-west-1" not in text
    uploader = next(s for name, s in yaml.safe_load(text)["services"].items() if name.startswith("uploader-"))
    assert uploader["environment"]["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/aws_credentials"
    assert {"AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP"} <= set(uploader["environment"])
    assert uploader["environment"]["AWS_REGION"] is None  # compose takes the value from the environment of `up`
    assert uploader["network_mode"] == "host"


def test_role_configs_reload_as_a_valid_config(tmp_path, plan):
    layout = ProjectLayout(tmp_path)
    config = _cosmos_config()
    config.uploader.sinks.cosmos.enabled = False  # the sink does not exist yet: an enabled one is refused on load
    paths = write_role_configs(layout, config, plan)
    for path in paths:
        if path.name == "sensor-manager.yaml":
            Config.model_validate(yaml.safe_load(path.read_text()))
            assert SECRET not in path.read_text()


def test_secret_files_are_owner_read_only(tmp_path):
    layout = ProjectLayout(tmp_path)
    names = write_secrets(layout, {"cosmos_key": SECRET}, os.getuid(), os.getgid())
    path = layout.secrets / "cosmos_key"
    assert names == ["cosmos_key"] and path.read_text() == SECRET
    assert path.stat().st_mode & 0o777 == 0o400 and layout.secrets.stat().st_mode & 0o777 == 0o700


def test_mount_sources_exist_before_up(tmp_path, plan):
    layout = ProjectLayout(tmp_path)
    inputs = StackInputs(layout, "sm-x-000000", "img:1", container_user())
    document = render_stack(plan, Config(), inputs)
    prepare_mounts(layout, document, os.getuid(), os.getgid())
    for spec in document["services"].values():
        assert all(Path(m["source"]).is_dir() for m in spec["volumes"] if "config" not in m["target"])


def test_project_names(tmp_path):
    layout = ProjectLayout(tmp_path / "My Project")
    name = default_project_name(layout)
    assert name.startswith("sm-my-project-") and len(name) == len("sm-my-project-") + 6
    assert name == default_project_name(ProjectLayout(tmp_path / "My Project"))
    assert name != default_project_name(ProjectLayout(tmp_path / "other" / "My Project"))
    assert validate_project_name("demo_1") == "demo_1"
    with pytest.raises(UsageError, match="compose project name"):
        validate_project_name("Bad Name")


def test_root_runs_containers_as_65532():
    assert container_user(0, 0) == "65532:65532"
    assert container_user(1000, 1001) == "1000:1001"


DOLLAR_ROOT = Path("/srv/$HOME/${USER:-me}-fleet")


def _unescape(value):
    """What compose interpolation makes of a value ($$ -> $), for values without variables."""
    if isinstance(value, str):
        assert "$" not in value.replace("$$", ""), f"unescaped $ in {value!r}"
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def _dollar_inputs() -> StackInputs:
    return replace(_inputs(), layout=ProjectLayout(DOLLAR_ROOT))


def test_every_string_value_is_escaped_for_compose_interpolation(plan):
    document = render_stack(plan, Config(), _dollar_inputs())
    assert _unescape(yaml.safe_load(dump_stack(document))) == document
    uploader = next(spec for spec in document["services"].values() if spec["labels"]["io.sensor-manager.role"] == "uploader")
    assert str(DOLLAR_ROOT) in {m["source"].split("/data")[0] for m in uploader["volumes"]}


@pytest.mark.docker
def test_compose_config_reads_a_dollar_project_dir_verbatim(plan, tmp_path):
    """`docker compose config` on the real CLI: bind sources and labels keep `$HOME` as written."""
    document = render_stack(plan, Config(), _dollar_inputs())
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(dump_stack(document))
    result = subprocess.run(["docker", "compose", "-f", str(compose_file), "config", "--format", "json"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = _unescape(json.loads(result.stdout)["services"])  # its output is a compose file: `$` escaped again
    for name, spec in document["services"].items():
        assert [m["source"] for m in seen[name]["volumes"]] == [m["source"] for m in spec["volumes"]]
        assert seen[name]["labels"] == spec["labels"]
    assert any(str(DOLLAR_ROOT) in label for spec in seen.values() for label in spec["labels"].values())
