"""Container healthchecks: `python -m sensor_manager.runtimes.healthcheck sensor|uploader STATUS_FILE`.

The same checks as `simulate --check` and `python -m uploader --check` (the same functions), without
the CLI's start-up: a healthcheck runs in every container every few seconds, and 30 CLI start-ups per
interval starve a small host. Imports only the status modules (standard library underneath).
Exit 0 healthy, 1 not; one line saying why on stdout (docker keeps it in State.Health.Log).
"""
from __future__ import annotations

import sys
from pathlib import Path


def check(role: str, status_file: Path) -> tuple[bool, str]:
    if role == "sensor":
        from sensor_manager.simulator.status_file import is_healthy

        return is_healthy(status_file)
    if role == "uploader":
        from uploader.status_file import check_health

        return check_health(status_file)
    return False, f"unknown role {role!r}: use sensor or uploader"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m sensor_manager.runtimes.healthcheck sensor|uploader STATUS_FILE")
        return 2
    healthy, why = check(argv[0], Path(argv[1]))
    print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
