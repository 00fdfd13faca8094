"""The `hotline` command.

Every error a person can cause (a bad flag, a broken config, a missing database) ends as one
line on stderr and an exit code, never a traceback: 0 done, 1 the check failed (validate,
audit, a purge with failures), 2 bad usage, config or input, 70 a bug in hotline (the one
line says so; ``HOTLINE_TRACEBACK=1`` prints where).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from .config import ConfigError, load_config_or_report
from .flowfiles import read_flow_sources

EXIT_BUG = 70  # EX_SOFTWARE


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("hotline")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def _run(args: argparse.Namespace) -> int:
    from . import logging as hlog

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    hlog.configure(config.server.log_format, config.server.log_level)
    import structlog

    from . import exposure
    from .preflight import preflight

    for finding in exposure.notices(config.sip.host):  # e.g. SIP on every interface: said once
        structlog.get_logger("hotline").warning(finding.code.replace(".", "_"), message=finding.message)
    problems = preflight(config)
    for problem in problems:
        print(f"hotline: {problem}", file=sys.stderr)
    if problems:
        return 2
    from .app import Server, StartError

    try:
        server = Server(config)
    except Exception as exc:  # what preflight could not foresee: still one line
        print(f"hotline: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    import uvloop

    try:
        uvloop.run(server.run_until_signalled())
    except StartError as exc:
        print(f"hotline: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _vocabulary(config: Any, flows: Any) -> list[Any]:
    """Load the configured models and warn about flow phrases they cannot recognize."""
    from telephony import asr

    from .speech import vocabulary_warnings

    registry = asr.ModelRegistry()
    statuses = registry.load(config.speech_models())
    for st in statuses.values():
        if st.state != "loaded":
            print(f"hotline: speech model {st.language!r} not checked: {st.reason}", file=sys.stderr)

    def knows(language: str, word: str) -> bool | None:
        st = statuses.get(language)
        if st is None or st.state != "loaded":
            return None
        return bool(registry.model(language).vosk_model_find_word(word) >= 0)

    return vocabulary_warnings(flows.values(), knows)


def _validate(args: argparse.Namespace) -> int:
    """Validate flows as one set (subflows resolve across files), and with --config the config
    and everything `hotline run` would refuse; exit 1 on any error."""
    import ivr

    queues = skills = prompts = None
    config = None
    errors = 0
    prompt_dirs: list[Path] | None = None
    if args.config is not None:
        from .flowset import known_skills, prompt_ids
        from .preflight import preflight

        config = load_config_or_report(args.config)
        if config is None:
            return 1
        queues = [q.name for q in config.acd.queues]
        skills = known_skills(config)
        prompt_dirs = [config.path(d) for d in config.prompts.directories]
        prompts = prompt_ids(prompt_dirs)
        for problem in preflight(config, main_flow=False):
            print(f"{args.config}: {problem}")
            errors += 1
    elif not args.paths:
        print("hotline validate: give flow files or directories, or --config FILE", file=sys.stderr)
        return 2
    paths = args.paths or ([str(config.path(config.flows.directory))] if config is not None else [])
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            print(f"{p}:1:1: flow.unreadable: no such file or directory")
            errors += 1
            continue
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    sources, unreadable = read_flow_sources(files)
    errors += unreadable
    _flows, diagnostics = ivr.compile_flow_set(
        sources, known_queues=queues, known_skills=skills, known_prompts=prompts
    )
    if args.models:
        if config is None:
            print("hotline: --models needs --config (the [speech.models] to check against)", file=sys.stderr)
            return 2
        diagnostics = diagnostics + _vocabulary(config, _flows)
    for d in diagnostics:
        print(d)
    if prompt_dirs is not None:  # what callers will hear synthesized instead of recorded
        from .promptcheck import validate_lines

        for line in validate_lines(_flows.values(), prompt_dirs):
            print(line)
    errors += sum(1 for d in diagnostics if d.severity == "error")
    for f in sources:
        if not any(d.loc.file == f and d.severity == "error" for d in diagnostics):
            print(f"{f}: ok")
    return 1 if errors else 0


def _schema(args: argparse.Namespace) -> int:
    import json

    import ivr

    print(json.dumps(ivr.json_schema(), indent=2, ensure_ascii=False))
    return 0


def _diagram(args: argparse.Namespace) -> int:
    import ivr

    try:
        flows = ivr.load_flow_set([args.flow])
    except ivr.FlowInvalid as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
        return 1
    print(ivr.mermaid(next(iter(flows.values()))))
    return 0


def audit_main(argv: list[str]) -> int:
    import cti_bridge

    ap = argparse.ArgumentParser(prog="hotline audit", description="the hash-chained audit log")
    sub = ap.add_subparsers(dest="command", required=True, metavar="verify")
    verify = sub.add_parser("verify", help="check the audit chain (recording access, purges)")
    verify.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    args = ap.parse_args(argv)
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    database = config.path(config.storage.database)
    if not database.exists():
        print(f"hotline audit: no database at {database} yet: nothing was audited", file=sys.stderr)
        return 2
    ok, bad = cti_bridge.verify_audit(database)
    if ok:
        print("audit log intact")
        return 0
    print(f"audit log broken at row {bad}: it was changed, removed or forged after it was written")
    return 1


def _owned(name: str, argv: list[str]) -> int:
    """The commands that parse their own options."""
    if name == "simulate":
        import acd

        return int(acd.simulator.main(argv))
    if name == "audit":
        return audit_main(argv)
    if name == "dnc":
        from . import outbound

        return int(outbound.cli_main(argv))
    if name == "retention":
        from . import retention

        return int(retention.cli_main(argv))
    if name == "profiles":
        from . import profiles

        return int(profiles.cli_main(argv))
    if name == "prompts":
        from .speechcli import prompts_main

        return prompts_main(argv)
    if name == "models":
        from .speechcli import models_main

        return models_main(argv)
    if name == "qa":
        from . import qa

        return int(qa.cli_main(argv))
    if name == "agents":
        from .credentials import cli_main as agents_main

        return agents_main(argv)
    if name == "proxy":
        from .proxy import print_config

        return print_config(argv)
    from .report import main as report

    return report(argv)


OWNED = {
    "simulate": "run the ACD core on a simulated load; `hotline simulate --help`",
    "report": "queue figures per interval, or --queue-log (Asterisk format); `hotline report --help`",
    "audit": "`hotline audit verify [--config FILE]`: check the audit chain (recording access, purges)",
    "profiles": "caller profiles: `hotline profiles import FILE.csv` or `show NUMBER`",
    "dnc": "do-not-call list: `hotline dnc import FILE.csv | add | remove | check NUMBER`",
    "retention": "`hotline retention purge [--days N] [--dry-run]`: purge old calls now",
    "prompts": "`hotline prompts build [--config FILE]`: speak every static prompt into the TTS cache",
    "models": "`hotline models list [--config FILE] [--load]` | `install LANG`: Vosk speech models",
    "qa": 'call transcripts: `hotline qa search "complaint" [--from --to --queue --agent]` | `show CALL`',
    "agents": "`hotline agents passwd ID` | `list` [--config FILE]: agents' SIP passwords (HA1 only)",
    "proxy": "`hotline proxy config [--config FILE] [--write]`: the Kamailio config",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="CTI/IVR telephony server with an ACD core")
    parser.add_argument("--version", action="version", version=f"hotline {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the server")
    run.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    run.set_defaults(func=_run)
    val = sub.add_parser(
        "validate", help="check flow files, and with --config the config; warnings print, errors exit 1"
    )
    val.add_argument(
        "paths", nargs="*", help="flow files or directories of *.yaml (default with --config: its flows)"
    )
    val.add_argument("--config", default=None, help="also check the config and flows against it")
    val.add_argument(
        "--models", action="store_true", help="also load [speech.models] and check every spoken phrase"
    )
    val.set_defaults(func=_validate)
    schema = sub.add_parser("schema", help="print the JSON Schema of the flow language (for editors)")
    schema.set_defaults(func=_schema)
    diagram = sub.add_parser("diagram", help="print a Mermaid flowchart of a flow")
    diagram.add_argument("flow", help="a flow file")
    diagram.set_defaults(func=_diagram)
    for name, text in OWNED.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _main(argv: list[str]) -> int:
    if argv[:1] and argv[0] in OWNED:
        return _owned(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    return int(args.func(args))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"hotline: {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hotline report | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug: one line that says so, the traceback only on request
        print(
            f"hotline: internal error: {type(exc).__name__}: {exc} "
            "(a bug in hotline; set HOTLINE_TRACEBACK=1 to see where, and report it)",
            file=sys.stderr,
        )
        if os.environ.get("HOTLINE_TRACEBACK"):
            traceback.print_exc()
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
