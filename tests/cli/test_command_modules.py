"""Every command module is imported for real: a missing one stops the CLI instead of dropping its commands."""
from __future__ import annotations

import subprocess
import sys

HIDE_UPLOAD = """
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sensor_manager.cli.upload":
            raise ModuleNotFoundError("No module named 'sensor_manager.cli.upload'", name=name)
        return None

sys.meta_path.insert(0, Hide())
import sensor_manager.cli
"""


def test_a_missing_command_module_is_an_import_error_not_a_silent_gap():
    result = subprocess.run([sys.executable, "-c", HIDE_UPLOAD], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'sensor_manager.cli.upload'" in result.stderr
