"""Imports every command module so each registers its commands on the app; a missing one is an ImportError.

The order is the order of `--help`.
"""
import importlib

COMMAND_MODULES = ("planning", "simulate", "upload", "lifecycle", "live", "observe", "sinks", "docker", "nodes", "bacalhau",
                   "dashboard")

for _name in COMMAND_MODULES:
    importlib.import_module(f"sensor_manager.cli.{_name}")
