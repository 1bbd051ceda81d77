"""S3-specific behaviour against the loopback moto server: layouts, an outage mid-run, bad inputs."""
from __future__ import annotations

import http.server
import threading

import pytest
from deltalake import DeltaTable

from tests.uploader.sinks.conftest import s3_sink
from uploader.sinks.base import Delivered, Retry
from uploader.sinks.s3 import S3ConfigError, S3Sink


def keys(s3, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_parquet_layout_writes_deterministic_objects_and_a_replay_rewrites_identical_bytes(s3, batch_of, app_id):
    bucket = s3.new_bucket()
    sink = s3_sink(s3, bucket, "parquet")
    assert sink.write(batch_of(0, 10)) == Delivered({app_id: 10}, rows=10)
    data = "sensor-manager/city=New_York/date=2025-06-01/New_York_AB12-gen-1-1-10.parquet"
    [position] = [k for k in keys(s3, bucket) if k.startswith("sensor-manager/_sensor_manager/positions/")]
    assert keys(s3, bucket) == sorted([data, position])
    etag = s3.client().head_object(Bucket=bucket, Key=data)["ETag"]
    s3.client().delete_object(Bucket=bucket, Key=position)  # a crash between the data and the position object
    assert sink.write(batch_of(0, 10)) == Delivered({app_id: 10}, rows=10)
    assert keys(s3, bucket) == sorted([data, position])
    assert s3.client().head_object(Bucket=bucket, Key=data)["ETag"] == etag


def test_a_replay_over_another_range_than_the_interrupted_batch_leaves_no_row_twice(s3, batch_of, app_id, monkeypatch):
    import io

    import pyarrow.parquet as pq

    bucket = s3.new_bucket()
    sink = s3_sink(s3, bucket, "parquet")
    put_position = sink._put_position

    def crash_before_the_position_moves(record):
        if "pending" not in record:
            raise ConnectionError("killed")
        put_position(record)

    monkeypatch.setattr(sink, "_put_position", crash_before_the_position_moves)
    assert isinstance(sink.write(batch_of(0, 20)), Retry)  # its data objects are in the bucket, the position is still 0
    monkeypatch.undo()
    assert sink.resume_from(app_id) == 0
    assert sink.write(batch_of(0, 10)) == Delivered({app_id: 10}, rows=10)  # the replay is a smaller batch
    assert sink.write(batch_of(10, 20)) == Delivered({app_id: 20}, rows=10)
    client = s3.client()
    seqs = [s for k in keys(s3, bucket) if "/city=" in k
            for s in pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=k)["Body"].read()))["seq"].to_pylist()]
    assert sorted(seqs) == list(range(1, 21))


def test_delta_layout_is_a_delta_table_under_the_prefix_with_app_transactions(s3, batch_across, app_id_of):
    bucket = s3.new_bucket()
    sink = s3_sink(s3, bucket, "delta")
    sink.write(batch_across({0: (0, 10), 1: (0, 5)}))
    table = DeltaTable(f"s3://{bucket}/sensor-manager/sensor_readings", storage_options=sink.delta.storage_options)
    assert [table.transaction_version(app_id_of(n)) for n in range(2)] == [10, 5]
    assert table.metadata().partition_columns == ["city", "date"]
    assert table.to_pyarrow_table().num_rows == 15


def test_check_leaves_no_probe_object_behind(s3):
    bucket = s3.new_bucket()
    result = s3_sink(s3, bucket, "parquet").check()
    assert result.ok, result.message
    assert keys(s3, bucket) == []


@pytest.mark.parametrize("layout", ["delta", "parquet"])
def test_an_outage_mid_run_gives_retry_and_the_run_recovers_with_every_row_once(s3, batch_of, app_id, layout):
    bucket = s3.new_bucket()
    sink = s3_sink(s3, bucket, layout)
    position, retries, attempt = 0, 0, 0
    while position < 100:  # the pipeline's loop in small: advance on Delivered, try again on Retry
        attempt += 1
        if attempt == 4:
            s3.stop()
        if attempt == 7:
            s3.start()
        outcome = sink.write(batch_of(position, position + 10))
        if isinstance(outcome, Retry):
            retries += 1
        else:
            position = outcome.positions[app_id]
    assert retries == 3
    if layout == "delta":
        rows = DeltaTable(sink.uri("sensor_readings"), storage_options=sink.delta.storage_options).to_pyarrow_table()
        seqs = rows["seq"].to_pylist()
    else:
        seqs = [int(k.rsplit("-", 1)[1].split(".")[0]) for k in keys(s3, bucket) if "city=" in k]
        seqs = [seq for last in seqs for seq in range(last - 9, last + 1)]
    assert sorted(seqs) == list(range(1, 101))
    assert sink.resume_from(app_id) == 100


@pytest.mark.parametrize("layout", ["delta", "parquet"])
def test_a_bucket_that_does_not_exist_fails_check_clearly(s3, layout):
    result = s3_sink(s3, "no-such-bucket-here", layout).check()
    assert not result.ok
    assert result.message.startswith("s3: ") and "bucket 'no-such-bucket-here' does not exist" in result.message


def test_wrong_credentials_fail_check_clearly(s3, monkeypatch):
    import moto.settings

    bucket = s3.new_bucket()
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks keys against its IAM
    result = s3_sink(s3, bucket, "parquet").check()
    assert not result.ok and "refuses the credentials (InvalidAccessKeyId)" in result.message


@pytest.mark.parametrize("prefix", ["../elsewhere", "a/../b", "a//b", "./a"])
def test_a_prefix_that_escapes_or_is_ambiguous_is_refused(s3, prefix):
    with pytest.raises(S3ConfigError, match=r"uploader\.sinks\.s3\.prefix"):
        S3Sink("some-bucket", prefix, endpoint_url=s3.endpoint)


def test_a_plain_http_endpoint_needs_aws_allow_http(s3, monkeypatch):
    monkeypatch.delenv("AWS_ALLOW_HTTP")
    with pytest.raises(S3ConfigError, match="AWS_ALLOW_HTTP=true"):
        S3Sink("some-bucket", endpoint_url=s3.endpoint)


def test_bad_bucket_names_and_profiles_are_refused(s3):
    with pytest.raises(S3ConfigError, match=r"uploader\.sinks\.s3\.bucket 'Bad_Bucket'"):
        S3Sink("Bad_Bucket", endpoint_url=s3.endpoint)
    with pytest.raises(S3ConfigError, match=r"uploader\.sinks\.s3\.profile: .*nobody"):
        S3Sink("some-bucket", endpoint_url=s3.endpoint, profile="nobody")


class NotS3(http.server.BaseHTTPRequestHandler):
    """A web server that answers every request with a page, as a wrong endpoint_url would."""

    def _page(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"<html><body>welcome</body></html>")

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _page

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("layout", ["delta", "parquet"])
def test_an_endpoint_that_is_not_s3_fails_check_clearly(s3, layout):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        result = S3Sink("some-bucket", layout=layout, endpoint_url=endpoint).check()
    finally:
        server.shutdown()
        thread.join()
    assert not result.ok and result.message.startswith("s3: ")
    assert "not an S3 endpoint" in result.message or "does not answer like S3" in result.message, result.message


def test_uploaders_on_two_machines_share_one_s3_delta_table_without_losing_a_commit(s3, batch_of, app_id_of):
    """delta-rs commits with conditional put: of two racing commits for one version, one retries on top."""
    bucket = s3.new_bucket()
    sinks = [s3_sink(s3, bucket, "delta") for _ in range(2)]
    sinks[0].check()  # the table exists before the race
    outcomes: dict[int, list] = {0: [], 1: []}

    def ship(n: int) -> None:
        for after in range(0, 50, 10):
            outcomes[n].append(sinks[n].write(batch_of(after, after + 10, source=n)))

    threads = [threading.Thread(target=ship, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(o, Delivered) for n in range(2) for o in outcomes[n]), outcomes
    table = DeltaTable(sinks[0].uri("sensor_readings"), storage_options=sinks[0].delta.storage_options)
    assert [table.transaction_version(app_id_of(n)) for n in range(2)] == [50, 50]
    assert table.to_pyarrow_table().num_rows == 100 and table.version() == 10


def test_the_delta_layout_uses_keys_from_a_shared_credentials_file(s3, batch_across, app_id_of, tmp_path, monkeypatch):
    # In a container the keys arrive only as a secret file (AWS_SHARED_CREDENTIALS_FILE); delta-rs reads no such file.
    credentials = tmp_path / "aws_credentials"
    credentials.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    bucket = s3.new_bucket()
    sink = s3_sink(s3, bucket, "delta")
    assert isinstance(sink.write(batch_across({0: (0, 3)})), Delivered)
    options = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    assert DeltaTable(f"s3://{bucket}/sensor-manager/sensor_readings", storage_options=options).to_pyarrow_table().num_rows == 3
