"""The upload command line, declared once: `python -m uploader` and `./sensor_manager.py upload` both parse
with `parse_args` and end in fleetcore.boundary (one `error:` line, exit 2 for bad input).

`run` is the library call behind both: resolve the run, ship (or --check), map the result to an exit code.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fleetcore.boundary import exit_code_for
from fleetcore.errors import ExitCode, UsageError
from uploader.allocators import tune_allocators

if TYPE_CHECKING:
    from uploader.settings import UploaderSettings

# sensor_manager's CLI imports this module at every start-up: settings (pydantic) load only when parsing.

PROG = "python -m uploader"
DESCRIPTION = "Ship every reading of the sensor DBs under --sqlite exactly once to the lake."
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _Parser(argparse.ArgumentParser):
    help_command = f"{PROG} --help"

    def error(self, message: str):  # one `error:` line, a hint and exit 2, like every other command
        error = UsageError(message)
        error.hint = f"try '{self.help_command}'"
        raise error


def interval_seconds(text: str) -> float:
    from uploader.settings import MAX_INTERVAL_SECONDS

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_INTERVAL_SECONDS:  # also false for NaN
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 and at most {MAX_INTERVAL_SECONDS}, not {text!r}")
    return value


def build_parser(prog: str = PROG, help_command: str | None = None) -> argparse.ArgumentParser:
    from uploader.settings import MAX_INTERVAL_SECONDS

    parser = _Parser(prog=prog, description=DESCRIPTION, epilog=f"Example: {prog} --sqlite data/New_York")
    parser.help_command = help_command or f"{prog} --help"
    # Required, but checked after parsing: an unknown or malformed flag is the error to report first.
    parser.add_argument("--sqlite", type=Path, metavar="PATH", help="A sensor_data.db, or a directory searched recursively for them.")
    parser.add_argument("--config", "-c", type=Path, metavar="FILE", help="Config file; its uploader: and project: keys apply (`upload` finds it as every command does; python -m uploader reads the resolved file sensor-manager renders, literally, else built-in defaults).")
    parser.add_argument("--cosmos-config", type=Path, metavar="FILE", help="The seed's cosmos-config.yaml mapped onto uploader.sinks.cosmos (`sensor_manager.py upload` only: python -m uploader runs on resolved settings; use `config import-cosmos`).")
    parser.add_argument("--project-dir", type=Path, metavar="DIR", help="Project directory (default: inferred when --sqlite lies under <dir>/data).")
    parser.add_argument("--uploader-id", metavar="ID", help="This uploader's name (default: the city directory of --sqlite as a slug).")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="Drain every source to its end as of start, then exit (default). Exits 1, saying so, when another running uploader (e.g. the fleet's) holds this --uploader-id or a source: stop the fleet first.")
    mode.add_argument("--continuous", action="store_true", help="Poll every --interval seconds until SIGTERM.")
    parser.add_argument("--interval", type=interval_seconds, metavar="SECONDS", help=f"Seconds between polls, above 0 and at most {MAX_INTERVAL_SECONDS} (default: uploader.interval_seconds, 30).")
    parser.add_argument("--lake", type=Path, metavar="PATH", help="Lake directory (default: <project-dir>/lake); table <lake>/sensor_readings.")
    parser.add_argument("--state-dir", type=Path, metavar="DIR", help="State root: checkpoints/, locks/, deadletter/, status/ (default: <project-dir>/state).")
    parser.add_argument("--check", action="store_true", help="Exit 0 when the status file is fresh and no sink is failing permanently.")
    parser.add_argument("--development", action="store_true", help="A demo run (the seed's flag): re-upload everything under a new fleet epoch, so every key (Cosmos DB document ids included) is fresh and a demo replays into the same lake or container without conflicts; Cosmos DB documents get the current time as their timestamp.")
    parser.add_argument("--quiet", "-q", action="store_true", help="Only errors on stderr.")
    parser.add_argument("--verbose", "-v", action="store_true", help="More detail on stderr.")
    parser.add_argument("--traceback", action="store_true", help="Show a traceback on errors.")
    return parser


def parse_args(argv: list[str], prog: str = PROG, help_command: str | None = None) -> argparse.Namespace:
    """The upload flags in `argv`; raises UsageError (exit 2) naming the flag on bad input."""
    parser = build_parser(prog, help_command)
    args = parser.parse_args(argv)
    if args.sqlite is None:
        parser.error("the following arguments are required: --sqlite")
    return args


def run(args: argparse.Namespace, settings: UploaderSettings | None = None, project: str | None = None) -> int:
    """Run the uploader for parsed flags and return the exit code. `settings`/`project`, when the caller
    has resolved them (sensor-manager's `upload`), win over reading the --config file."""
    if args.cosmos_config is not None and settings is None:
        raise UsageError("--cosmos-config: python -m uploader reads resolved settings only; "
                         "run `sensor_manager.py upload --cosmos-config FILE` or map it with `config import-cosmos`")
    tune_allocators()  # before the pipeline's native libraries load
    from uploader.runner import check, upload

    options = dict(sqlite=args.sqlite, settings=settings, project=project, config=args.config,
                   project_dir=args.project_dir, uploader_id=args.uploader_id, continuous=args.continuous,
                   interval=args.interval, lake=args.lake, state_dir=args.state_dir, development=args.development)
    if args.check:
        healthy, reason = check(**options)
        sys.stderr.write(f"{reason}\n")
        return int(ExitCode.OK if healthy else ExitCode.FAILURE)
    return int(ExitCode.OK if upload(**options) else ExitCode.FAILURE)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        # A service's log: progress at INFO unless asked otherwise.
        level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
        logging.basicConfig(level=level, stream=sys.stderr, format=LOG_FORMAT)
        return run(args)
    except (Exception, KeyboardInterrupt) as exc:  # the boundary shared with sensor_manager's CLI
        return exit_code_for(exc, show_traceback="--traceback" in argv)
