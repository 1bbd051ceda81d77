"""`python -m uploader` and `./sensor_manager.py upload`: flags, exit codes, one error line, SIGTERM, --check."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from fleetcore.statusfiles import read_json_object
from sensor_manager.cli import app
from uploader.cli import main


def delta_rows_shipped(status_path) -> int | None:
    return ((read_json_object(status_path) or {}).get("sinks", {}).get("delta") or {}).get("rows_shipped")


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["--sqlite"], "error: argument --sqlite: expected one argument"),
    ([], "error: the following arguments are required: --sqlite"),
    (["--sqlite", "{data}", "--once", "--continuous"], "error: argument --continuous: not allowed with argument --once"),
    (["--sqlite", "{data}/nowhere"], "error: --sqlite {data}/nowhere: no such file or directory"),
    (["--sqlite", "{data}", "--uploader-id", "New York"], "error: --uploader-id 'New York': use lowercase letters"),
    (["--sqlite", "{data}", "--interval", "0"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not '0'"),
    (["--sqlite", "{data}", "--continuous", "--interval", "nan"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not 'nan'"),
    (["--sqlite", "{data}", "--continuous", "--interval", "inf"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not 'inf'"),
    (["--sqlite", "{data}", "--continuous", "--interval", "-5"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not '-5'"),
    (["--sqlite", "{data}", "--continuous", "--interval", "86401"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not '86401'"),
    (["--sqlite", "{data}", "--interval", "soon"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not 'soon'"),
    (["--sqlite", "{data}", "--lake", "s3://bucket/lake"], "error: lake s3:/bucket/lake: object-store lakes are not supported yet"),
])
def test_bad_input_exits_2_with_one_error_line_and_changes_nothing(project, capsys, tree_listing, argv, message):
    before = tree_listing(project)
    argv = [a.replace("{data}", str(project / "data")) for a in argv]
    code, out, err = run_main(argv + ["--project-dir", str(project)] if argv else argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith(message.replace("{data}", str(project / "data")))
    lines = err.strip().splitlines()  # one error line; a usage error adds the hint to --help
    assert lines[1:] in ([], ["try 'python -m uploader --help'"]) and "Traceback" not in err
    assert tree_listing(project) == before


def test_once_ships_and_check_reports_healthy_then_stale(project, sensor_db, capsys):
    sensor_db(project / "data" / "New_York" / "AB12" / "sensor_data.db").append(25)
    code, out, err = run_main(["--sqlite", str(project / "data" / "New_York"), "--project-dir", str(project)], capsys)
    assert code == 0 and "Traceback" not in err
    status_path = project / "state" / "status" / "uploader-new-york.json"
    assert json.loads(status_path.read_text())["sinks"]["delta"]["rows_shipped"] == 25
    check = ["--sqlite", str(project / "data" / "New_York"), "--project-dir", str(project), "--check"]
    assert run_main(check, capsys)[0] == 0
    document = json.loads(status_path.read_text())
    status_path.write_text(json.dumps({**document, "updated_at_epoch": time.time() - 1000}))
    code, _, err = run_main(check, capsys)
    assert code == 1 and "stale" in err
    document["sinks"]["delta"]["failing_permanently"] = True
    status_path.write_text(json.dumps({**document, "updated_at_epoch": time.time()}))
    code, _, err = run_main(check, capsys)
    assert code == 1 and "failing permanently" in err


def test_check_without_a_status_file_fails(project, capsys):
    code, _, err = run_main(["--sqlite", str(project / "data"), "--project-dir", str(project), "--check"], capsys)
    assert code == 1 and "no readable status file" in err


def test_once_with_an_unreachable_sink_exits_1_after_bounded_retries(project, sensor_db, capsys):
    sensor_db(project / "data" / "Berlin" / "AB12" / "sensor_data.db").append(5)
    config = project / "sensor-manager.yaml"
    config.write_text("uploader:\n  sinks:\n    delta:\n      retry: {initial_seconds: 0.01, max_seconds: 0.02, once_max_attempts: 3}\n")
    (project / "lake").mkdir()
    (project / "lake" / "sensor_readings").write_text("a file where the table should be")
    code, _, err = run_main(["--sqlite", str(project / "data" / "Berlin"), "--project-dir", str(project),
                             "--config", str(config)], capsys)
    assert code == 1 and "Traceback" not in err, err
    status = json.loads((project / "state" / "status" / "uploader-berlin.json").read_text())
    assert status["state"] == "failing"
    assert status["sinks"]["delta"]["failing_permanently"] and status["sinks"]["delta"]["retries"] == 3
    assert status["sinks"]["delta"]["lag_rows"] == 5
    assert status["sinks"]["delta"]["lag_seconds"] > 0  # the oldest unshipped reading's age


def test_upload_command_runs_the_uploader_in_the_foreground(project, sensor_db, runner):
    sensor_db(project / "data" / "Berlin" / "AB12" / "sensor_data.db").append(12)
    result = runner.invoke(app, ["upload", "--sqlite", str(project / "data" / "Berlin"), "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    assert json.loads((project / "state" / "status" / "uploader-berlin.json").read_text())["sinks"]["delta"]["rows_shipped"] == 12


# The two entry points, each run as its own process (the container runs the first).
ENTRY_POINTS = {"python -m uploader": [sys.executable, "-m", "uploader"],
                "sensor_manager.py upload": [sys.executable, "-m", "sensor_manager", "upload"]}


def run_entry_points(argv: list[str]) -> dict[str, tuple[int, str, str]]:
    """(exit code, stdout, stderr) per entry point, its own name in the output replaced by <prog>."""
    results = {}
    for prog, command in ENTRY_POINTS.items():
        done = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        results[prog] = (done.returncode, done.stdout.replace(prog, "<prog>"), done.stderr.replace(prog, "<prog>"))
    return results


@pytest.mark.parametrize("flags, message", [
    (["--continuous", "--interval", "nan"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not 'nan'"),
    (["--interval", "86401"], "error: argument --interval: must be a number of seconds above 0 and at most 86400, not '86401'"),
    (["--once", "--continuous"], "error: argument --continuous: not allowed with argument --once"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
])
def test_both_entry_points_refuse_a_bad_flag_with_the_same_line_and_exit_2(project, tree_listing, flags, message):
    before = tree_listing(project)
    results = run_entry_points(["--sqlite", str(project / "data"), "--project-dir", str(project), *flags])
    assert results["python -m uploader"] == (2, "", f"{message}\ntry '<prog> --help'\n")
    assert results["sensor_manager.py upload"] == (2, "", f"{message}\ntry './<prog> --help'\n")
    assert tree_listing(project) == before


def test_both_entry_points_list_the_same_options_in_help():
    results = run_entry_points(["--help"])
    options = {prog: set(re.findall(r"--[a-z][a-z-]*", out)) for prog, (code, out, _) in results.items() if code == 0}
    assert options["python -m uploader"] == options["sensor_manager.py upload"] == {
        "--sqlite", "--config", "--cosmos-config", "--project-dir", "--uploader-id", "--once", "--continuous",
        "--interval", "--lake", "--state-dir", "--check", "--development", "--quiet", "--verbose", "--traceback", "--help"}


def test_sigterm_in_continuous_mode_finishes_records_progress_and_exits_0(project, sensor_db, wait_until):
    sensor_db(project / "data" / "Berlin" / "AB12" / "sensor_data.db").append(40)
    status_path = project / "state" / "status" / "uploader-berlin.json"
    process = subprocess.Popen([sys.executable, "-m", "uploader", "--sqlite", str(project / "data" / "Berlin"),
                                "--project-dir", str(project), "--continuous", "--interval", "0.2"],
                               stderr=subprocess.PIPE, text=True)
    wait_until(lambda: delta_rows_shipped(status_path) == 40, 60, "40 rows shipped")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, process.stderr.read()
    final = json.loads(status_path.read_text())
    assert final["state"] == "stopped" and final["sources"][0]["positions"] == {"delta": 40}


def test_a_container_reads_project_and_epoch_from_the_plan_beside_its_config(tmp_path, sensor_db, capsys):
    root = tmp_path / "project"  # as mounted in a container: no state/plan.json
    sensor_db(root / "data" / "Berlin" / "AB12" / "sensor_data.db").append(3)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "sensor-manager.yaml").write_text("project: from-config\n")
    (config_dir / "plan.json").write_text('{"schema_version": 1, "project": "demo", "seed": 1, "fleet_epoch": 4, "sensors": []}')
    code, _, err = run_main(["--sqlite", str(root / "data" / "Berlin"), "--project-dir", str(root),
                             "--config", str(config_dir / "sensor-manager.yaml")], capsys)
    assert code == 0, err
    status = json.loads((root / "state" / "status" / "uploader-berlin.json").read_text())
    assert (status["project"], status["fleet_epoch"]) == ("demo", 4)


def test_once_beside_a_running_uploader_says_so_exits_1_and_leaves_its_status_alone(project, sensor_db, wait_until):
    for code in ("AA11", "BB22"):
        sensor_db(project / "data" / "Berlin" / code / "sensor_data.db", sensor_id=f"Berlin_{code}").append(20)
    status_path = project / "state" / "status" / "uploader-berlin.json"
    running = subprocess.Popen([sys.executable, "-m", "uploader", "--sqlite", str(project / "data" / "Berlin"),
                                "--project-dir", str(project), "--continuous", "--interval", "0.2"],
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: delta_rows_shipped(status_path) == 40, 60, "40 rows shipped")
        once = [sys.executable, "-m", "uploader", "--project-dir", str(project), "--once"]
        same_name = subprocess.run([*once, "--sqlite", str(project / "data" / "Berlin")], capture_output=True, text=True, timeout=60)
        other_name = subprocess.run([*once, "--sqlite", str(project / "data")], capture_output=True, text=True, timeout=60)
        document = json.loads(status_path.read_text())
    finally:
        running.send_signal(signal.SIGTERM)
        assert running.wait(timeout=30) == 0, running.stderr.read()
    assert same_name.returncode == 1 and "Traceback" not in same_name.stderr
    assert same_name.stderr.strip().splitlines()[-1].startswith(
        f"error: uploader berlin is already running (pid {running.pid}, ")
    assert other_name.returncode == 1 and "Traceback" not in other_name.stderr
    assert other_name.stderr.strip().splitlines()[-1].startswith(
        "error: 2 of 2 sources are being shipped by another running uploader (the fleet's?), so this run did not ship them")
    assert (document["pid"], document["mode"]) == (running.pid, "continuous")


def test_a_status_file_never_holds_nan(tmp_path):
    from fleetcore.statusfiles import write_status

    path = tmp_path / "status.json"
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_status(path, {"lag_seconds": float("nan")}, 30.0)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_registering_upload_keeps_the_cli_start_up_free_of_pydantic():
    # Every ./sensor_manager.py run imports uploader.cli (for `upload`); settings load only when parsing.
    probe = "import sys, sensor_manager.cli; print(sorted(m for m in ('pydantic', 'uploader.settings') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
