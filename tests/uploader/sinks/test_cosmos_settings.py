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
