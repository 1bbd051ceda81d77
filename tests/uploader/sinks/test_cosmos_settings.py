"""The Cosmos sink's settings and client factory: what a user can mistype, and the loopback test server."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from uploader.sinks.cosmos import CosmosSinkSettings, is_loopback
from uploader.sinks.cosmos_client import sync_container

KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def test_the_seed_defaults():
    settings = CosmosSinkSettings()
    assert (settings.database_name, settings.container_name, settings.partition_key) == ("SensorData", "SensorReadings", "/city")
    assert (settings.verify_tls, settings.create_if_missing, settings.max_in_flight) == (True, True, 8)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("endpoint", "acct.documents.azure.com", "is not an https:// URL"),
    ("endpoint", "ftp://acct.documents.azure.com", "is not an https:// URL"),
    ("endpoint", "https://acct.documents.azure.com:port/", "invalid port"),
    ("key", "not base64!!", "is not a base64 master key"),
    ("key", "", "is not a base64 master key"),
    ("partition_key", "city", "is not a top-level field path"),
    ("partition_key", "/address/city", "is not a top-level field path"),
])
def test_a_bad_value_is_refused_with_a_clear_message(field, value, message):
    with pytest.raises(ValidationError) as raised:
        CosmosSinkSettings(**{field: value})
    assert message in str(raised.value)


def test_a_malformed_key_is_never_echoed():
    with pytest.raises(ValidationError) as raised:
        CosmosSinkSettings(key="hunter2-not-base64")
    errors = raised.value.errors(include_input=False, include_url=False)
    assert "hunter2" not in str(errors)


@pytest.mark.parametrize("endpoint", ["https://127.0.0.1:8081/", "https://localhost:8081", "https://[::1]:8081/"])
def test_tls_verification_may_be_off_for_loopback(endpoint):
    assert is_loopback(endpoint)
    assert not CosmosSinkSettings(endpoint=endpoint, verify_tls=False).verify_tls


def test_tls_verification_off_is_refused_for_a_real_account():
    with pytest.raises(ValidationError, match="verify_tls: false is refused for https://acct.documents.azure.com"):
        CosmosSinkSettings(endpoint="https://acct.documents.azure.com:443/", verify_tls=False)


def test_the_test_server_speaks_cosmos(cosmos_server):
    from azure.cosmos import exceptions

    settings = CosmosSinkSettings(endpoint=cosmos_server.endpoint, key=cosmos_server.key, verify_tls=False,
                                  database_name="FixtureCheck", container_name="Items")
    container = sync_container(settings)
    container.create_item({"id": "one", "city": "Amsterdam"})
    with pytest.raises(exceptions.CosmosResourceExistsError):
        container.create_item({"id": "one", "city": "Amsterdam"})
    assert list(container.query_items("SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True)) == [1]
    assert container.read()["partitionKey"]["paths"] == ["/city"]


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("COSMOS_ENDPOINT", "not a url", "uploader.sinks.cosmos.endpoint: 'not a url' is not an https:// URL"),
    ("COSMOS_KEY", "hunter2!", "uploader.sinks.cosmos.key: is not a base64 master key"),
    ("COSMOS_VERIFY_TLS", "false", "verify_tls: false is refused for https://acct.documents.azure.com"),
])
def test_bad_cosmos_input_exits_2_with_one_clear_line(runner, project_dir, monkeypatch, variable, value, message):
    from sensor_manager.cli import app

    monkeypatch.setenv("COSMOS_ENDPOINT", "https://acct.documents.azure.com")
    monkeypatch.setenv("COSMOS_KEY", KEY)
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["config", "validate", "--project-dir", str(project_dir)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output and "hunter2" not in result.output


def test_the_key_file_of_a_container_is_read_and_checked(tmp_path, monkeypatch):
    from fleetcore.errors import ConfigError
    from uploader.sinks import cosmos
    from uploader.sinks.base import SinkContext

    key_file = tmp_path / "cosmos_key"
    settings = CosmosSinkSettings(enabled=True, endpoint="https://127.0.0.1:1/")
    context = SinkContext(lake=tmp_path, project_dir=None)
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("COSMOS_KEY_FILE", str(key_file))
    sink = cosmos.SPEC.build(settings, context)
    try:
        assert sink.settings.key == KEY
    finally:
        sink.close()
    key_file.write_text("hunter2!")
    with pytest.raises(ConfigError, match=f"COSMOS_KEY_FILE={key_file}: the file's key is not a base64 master key") as raised:
        cosmos.SPEC.build(settings, context)
    assert "hunter2" not in str(raised.value)
