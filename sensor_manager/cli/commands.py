"""Imports every command module so each registers its commands on the app."""
import importlib

COMMAND_MODULES = ("planning", "simulate", "upload", "lifecycle", "observe", "docker", "dashboard")

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"sensor_manager.cli.{_name}")
    except ModuleNotFoundError as _exc:
        # Only the module itself may be missing (not yet written); a missing dependency is a real error.
        if _exc.name != f"sensor_manager.cli.{_name}":
            raise
