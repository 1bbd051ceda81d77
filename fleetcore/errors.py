"""Exit codes and the error hierarchy: the only way library code reports failure to the CLI."""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, shared by every command and by `python -m uploader`."""

    OK = 0
    FAILURE = 1  # runtime failure: a sink down after retries, a process that died
    USAGE = 2  # usage or config error: bad flag, bad key, bad value
    ENGINE_UNAVAILABLE = 3  # container engine unavailable


class SensorManagerError(Exception):
    """Base of every expected failure; the CLI boundary prints `error: <message>` and exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.FAILURE
    hint: str | None = None  # printed as is after the error lines, e.g. "try './sensor_manager.py plan --help'"


class UsageError(SensorManagerError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """One or more configuration problems; `problems` holds one line each, all reported at once."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PlanChangedError(UsageError):
    """The config no longer matches the stored plan in a way that needs `--replan`."""


class ConfirmationRequiredError(UsageError):
    """A destructive command ran without `--yes` and without a terminal to ask on."""


class WriterLockedError(UsageError):
    """Another process holds the single-writer lock of a sensor DB."""


class RuntimeConflictError(UsageError):
    """The requested runtime differs from the one recorded in state/runtime.json."""


class EngineUnavailableError(SensorManagerError):
    exit_code = ExitCode.ENGINE_UNAVAILABLE


class ProcessFailedError(SensorManagerError):
    """A service or child process failed or did not become healthy."""


class ResourceLimitError(SensorManagerError):
    """An OS limit (open files, disk space) prevents the requested work."""


class LakeUnreadableError(SensorManagerError):
    """The lake's Delta log (or a file it lists) cannot be read: damaged, missing or not permitted."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: the Delta log is damaged or unreadable ({reason}); "
                         "run `diagnostics`, then restore or move aside the damaged _delta_log entry")
