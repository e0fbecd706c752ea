"""`shelfid`: parses arguments, calls one library function, turns errors into messages and exit codes.

Exit codes (one rule for every command; README "Commands"): 0 success; 1 the operation failed, or the
config is invalid (each problem named); 2 a bad invocation: unknown arguments, or a file the command
needs (the config, a token file) missing, unreadable or not YAML; 130 interrupted. Every error is one
line on stderr; a traceback only with --log-level DEBUG.

Every command that reads a config takes --config, else $SHELFID_CONFIG, else /etc/shelfid/config.yaml.
Commands that act for a device (run, sync, doctor, events) need one; tools (detect, catalog build and
serve, bench) use built-in defaults when none of the three exists.

The commands themselves, each group's parsers next to its handlers, are in edge/commands/.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from edge import __version__
from edge.commands import bench, catalog, device, models, sync
from edge.core.errors import ConfigError, ConfigFileError, ShelfIDError
from edge.logs import DEFAULT_LEVEL, setup_logging
from models.errors import ModelError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shelfid", description="Identify catalog products on retail shelves.")
    parser.add_argument("--version", action="version", version=f"shelfid {__version__}")
    # no default here: run and sync must tell an explicit --log-level (it wins) from none (their config's logging.level)
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help=f"log verbosity (default: logging.level from the config for run and sync, else {DEFAULT_LEVEL})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # in the order `shelfid --help` lists them
    for add in (device.add_check_config, device.add_detect, device.add_run, device.add_events, catalog.add_parsers,
                device.add_doctor, sync.add_parsers, models.add_parsers, bench.add_parsers):
        add(sub)
    return parser


def subcommand_parsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand's parser by its full name, e.g. 'models info'."""
    parser = parser or build_parser()
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{parser.prog.removeprefix('shelfid').strip()} {name}".strip()
                found[full] = child
                found.update(subcommand_parsers(child))
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or DEFAULT_LEVEL)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except ConfigFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc.path} is not a valid config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (ShelfIDError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, or a failure nobody foresaw: one line unless the operator asks for the traceback
        if args.log_level == "DEBUG":
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --log-level DEBUG for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
