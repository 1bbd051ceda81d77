"""The uploader takes resolved settings from its caller: in-process from `upload`, else from a rendered file."""
from __future__ import annotations

import json
import stat

from sensor_manager.config import load_config
from sensor_manager.layout import ProjectLayout
from sensor_manager.runtimes.local import uploader_argv, write_uploader_settings
from uploader.cli import main
from uploader.settings import read_settings_file


def test_a_rendered_settings_file_gives_the_uploader_section_and_project(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("project: demo\ncities: [{name: Berlin}]\nuploader:\n  interval_seconds: 7\n")
    settings, project = read_settings_file(path)
    assert (settings.interval_seconds, project) == (7, "demo")


def test_a_bad_settings_file_exits_2_naming_the_key(project, capsys):
    path = project / "settings.yaml"
    path.write_text("uploader:\n  read_batch_rows: 0\n")
    code = main(["--sqlite", str(project / "data"), "--project-dir", str(project), "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {path}: uploader.read_batch_rows: ") and "Traceback" not in err


def test_a_missing_settings_file_exits_2(project, capsys):
    code = main(["--sqlite", str(project / "data"), "--project-dir", str(project), "--config", str(project / "nope.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --config {project / 'nope.yaml'}: cannot read it")


def test_the_local_runtime_hands_its_uploaders_the_resolved_settings(tmp_path):
    config_file = tmp_path / "fleet.yaml"
    config_file.write_text("project: demo\nuploader:\n  interval_seconds: 9\n")
    layout = ProjectLayout.at(tmp_path / "project")
    config = load_config(config_file, layout.root)
    path = write_uploader_settings(layout, config)
    argv = uploader_argv(layout, config, "Berlin")
    assert argv[argv.index("--config") + 1] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold a sink key
    document = json.loads(path.read_text())
    assert document["project"] == "demo" and document["uploader"]["interval_seconds"] == 9
    settings, project = read_settings_file(path)
    assert settings == config.uploader and project == "demo"
