"""`python -m uploader`: parse flags, resolve the run, call the pipeline, map the result to an exit code.

The same error boundary as sensor_manager's CLI: a SensorManagerError prints one `error:` line and
exits with its code (2 for bad input); anything unexpected prints one line and exits 1.
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from fleetcore.errors import ExitCode, SensorManagerError, UsageError
from uploader.allocators import tune_allocators


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one `error:` line and exit 2, like every other command
        raise UsageError(f"{message} (see python -m uploader --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m uploader",
                     description="Ship every reading of the sensor DBs under --sqlite exactly once to the lake.")
    parser.add_argument("--sqlite", type=Path, required=True, metavar="PATH", help="a sensor_data.db, or a directory searched recursively for them")
    parser.add_argument("--config", "-c", type=Path, metavar="FILE", help="resolved settings file rendered by sensor-manager; its uploader: and project: keys apply (default: built-in defaults)")
    parser.add_argument("--project-dir", type=Path, metavar="DIR", help="project directory (default: inferred when --sqlite lies under <dir>/data)")
    parser.add_argument("--uploader-id", metavar="ID", help="this uploader's name (default: the city directory of --sqlite as a slug)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="drain every source to its end as of start, then exit (default); exits 1, saying so, when another running uploader (e.g. the fleet's) holds this --uploader-id or a source: stop the fleet first")
    mode.add_argument("--continuous", action="store_true", help="poll every --interval seconds until SIGTERM")
    parser.add_argument("--interval", type=float, metavar="SECONDS", help="seconds between polls (default: uploader.interval_seconds, 30)")
    parser.add_argument("--lake", type=Path, metavar="PATH", help="lake directory (default: <project-dir>/lake); table <lake>/sensor_readings")
    parser.add_argument("--state-dir", type=Path, metavar="DIR", help="state root: checkpoints/, locks/, deadletter/, status/ (default: <project-dir>/state)")
    parser.add_argument("--check", action="store_true", help="exit 0 when the status file is fresh and no sink is failing permanently")
    parser.add_argument("--development", action="store_true", help="re-upload everything under a new fleet epoch")
    parser.add_argument("--traceback", action="store_true", help="show a traceback on errors")
    return parser


def run(argv: list[str] | None = None) -> int:
    """Run the uploader for these arguments and return the exit code (the library call behind both CLIs)."""
    args = build_parser().parse_args(argv)
    from uploader.runner import check, upload

    options = dict(sqlite=args.sqlite, config=args.config, project_dir=args.project_dir, uploader_id=args.uploader_id,
                   continuous=args.continuous, interval=args.interval, lake=args.lake, state_dir=args.state_dir,
                   development=args.development)
    if args.check:
        healthy, reason = check(**options)
        sys.stderr.write(f"{reason}\n")
        return int(ExitCode.OK if healthy else ExitCode.FAILURE)
    return int(ExitCode.OK if upload(**options) else ExitCode.FAILURE)


def main(argv: list[str] | None = None) -> int:
    tune_allocators()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return run(argv)
    except SensorManagerError as exc:
        if "--traceback" in (argv if argv is not None else sys.argv):
            traceback.print_exc()
        for line in str(exc).splitlines() or [""]:
            sys.stderr.write(f"error: {line}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the boundary: anything unexpected becomes one line
        if "--traceback" in (argv if argv is not None else sys.argv):
            traceback.print_exc()
        sys.stderr.write(f"error: unexpected {type(exc).__name__}: {exc} (rerun with --traceback)\n")
        return int(ExitCode.FAILURE)
