"""`gateway simulate`: serve the simulated fleet from a profiles file (or the built-in fleet).

Argument parsing and start-up only; the server is `providers.simulator.server`.
"""

from __future__ import annotations

import argparse
import logging

from providers.simulator.profile import ProfileError, default_fleet, load_profiles
from providers.simulator.server import run_fleet

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)"
    )
    parser.add_argument(
        "--profiles",
        metavar="PATH",
        default=None,
        help="profiles TOML file with [providers.NAME] tables (default: the built-in fleet)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 when the profiles file is unusable."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        profiles = load_profiles(args.profiles) if args.profiles else default_fleet()
    except ProfileError as exc:
        logger.error("cannot load simulator profiles: %s", exc)
        return 2
    try:
        run_fleet(profiles, args.host, args.port)
    except OSError as exc:
        logger.error("cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: `python -m providers.simulator`."""
    parser = argparse.ArgumentParser(prog="simulate", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
