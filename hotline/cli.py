"""The `hotline` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_config


def _run(args: argparse.Namespace) -> int:
    from . import logging as hlog

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    hlog.configure(config.server.log_format, config.server.log_level)

    import ivr

    from .app import Server

    try:
        server = Server(config)
    except ivr.FlowInvalid as exc:
        print("hotline: the main flow is invalid:", file=sys.stderr)
        for d in exc.diagnostics:
            print(f"  {d}", file=sys.stderr)
        return 2
    import uvloop

    from .app import StartError

    try:
        uvloop.run(server.run_until_signalled())
    except StartError as exc:
        print(f"hotline: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _validate(args: argparse.Namespace) -> int:
    import ivr

    queues = None
    if args.config is not None:
        config = load_config(args.config)
        queues = [q.name for q in config.acd.queues]
    files: list[Path] = []
    for p in map(Path, args.paths):
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    bad = 0
    for f in files:
        try:
            ivr.load_flow(f, known_queues=queues)
            print(f"{f}: ok")
        except ivr.FlowInvalid as exc:
            bad += 1
            for d in exc.diagnostics:
                print(d)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline", description="CTI/IVR telephony server with an ACD core")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the server")
    run.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    run.set_defaults(func=_run)
    val = sub.add_parser("validate", help="check flow files; exit 1 if any is invalid")
    val.add_argument("paths", nargs="+", help="flow files or directories of *.yaml")
    val.add_argument("--config", default=None, help="also check queue names against this config")
    val.set_defaults(func=_validate)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
