"""The `hotline` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .config import load_config_or_report


def _run(args: argparse.Namespace) -> int:
    from . import logging as hlog

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    hlog.configure(config.server.log_format, config.server.log_level)
    import structlog

    from . import exposure

    for finding in exposure.notices(config.sip.host):
        structlog.get_logger("hotline").warning(finding.code.replace(".", "_"), message=finding.message)
    c = config.cti
    refused = exposure.weak_secrets(
        [(t.name, t.secret) for t in c.tokens], exposure.cti_addresses(c.host, c.http_port, c.http_host)
    )
    if refused:
        for finding in refused:
            print(f"hotline: cannot start: {finding.code}: {finding.message}", file=sys.stderr)
        return 2
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


def read_flow_sources(files: list[Path]) -> tuple[dict[str, str], int]:
    """Path -> text of each flow file; an unreadable one is printed as a diagnostic and counted."""
    sources: dict[str, str] = {}
    unreadable = 0
    for f in files:
        try:
            sources[str(f)] = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{f}:1:1: flow.unreadable: cannot read the flow: {exc}")
            unreadable += 1
    return sources, unreadable


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
    """Validate flows as one set (subflows resolve across files); exit 1 on any error."""
    import ivr

    queues = skills = prompts = None
    if args.config is not None:
        from .app import known_skills, prompt_ids

        config = load_config_or_report(args.config)
        if config is None:
            return 2
        queues = [q.name for q in config.acd.queues]
        skills = known_skills(config)
        prompts = prompt_ids([config.path(d) for d in config.prompts.directories])
    files: list[Path] = []
    for p in map(Path, args.paths):
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    sources, errors = read_flow_sources(files)
    _flows, diagnostics = ivr.compile_flow_set(
        sources, known_queues=queues, known_skills=skills, known_prompts=prompts
    )
    if args.models:
        if args.config is None:
            print("hotline: --models needs --config (the [speech.models] to check against)", file=sys.stderr)
            return 2
        diagnostics = diagnostics + _vocabulary(config, _flows)
    for d in diagnostics:
        print(d)
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


def _audit_verify(argv: list[str]) -> int:
    import cti_bridge

    ap = argparse.ArgumentParser(prog="hotline audit verify")
    ap.add_argument("--config", default="config.toml")
    args = ap.parse_args(argv)
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    ok, bad = cti_bridge.verify_audit(config.path(config.storage.database))
    if ok:
        print("audit log intact")
        return 0
    print(f"audit log broken at row {bad}: it was changed, removed or forged after it was written")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline", description="CTI/IVR telephony server with an ACD core")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the server")
    run.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    run.set_defaults(func=_run)
    val = sub.add_parser("validate", help="check flow files; warnings print, errors exit 1")
    val.add_argument("paths", nargs="+", help="flow files or directories of *.yaml")
    val.add_argument("--config", default=None, help="also check queue names against this config")
    val.add_argument(
        "--models", action="store_true", help="also load [speech.models] and check every spoken phrase"
    )
    val.set_defaults(func=_validate)
    schema = sub.add_parser("schema", help="print the JSON Schema of the flow language (for editors)")
    schema.set_defaults(func=_schema)
    diagram = sub.add_parser("diagram", help="print a Mermaid flowchart of a flow")
    diagram.add_argument("flow", help="a flow file")
    diagram.set_defaults(func=_diagram)
    sub.add_parser("simulate", help="run the ACD core on a simulated load; `hotline simulate --help`")
    sub.add_parser("report", help="queue figures per 15-minute interval; `hotline report --help`")
    sub.add_parser(
        "audit",
        help="`hotline audit verify [--config FILE]`: check the audit chain (recording access, purges)",
    )
    sub.add_parser("profiles", help="caller profiles: `hotline profiles import FILE.csv` or `show NUMBER`")
    sub.add_parser(
        "dnc", help="do-not-call list: `hotline dnc import FILE.csv | add | remove | check NUMBER`"
    )
    sub.add_parser("retention", help="`hotline retention purge [--days N] [--dry-run]`: purge old calls now")
    sub.add_parser(
        "prompts",
        help="`hotline prompts build [--config FILE]`: speak every static prompt into the TTS cache",
    )
    sub.add_parser(
        "models",
        help="`hotline models list [--config FILE] [--load]` | `install LANG`: Vosk speech models",
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:  # these own their options
        import acd

        return int(acd.simulator.main(argv[1:]))
    if argv[:2] == ["audit", "verify"]:
        return _audit_verify(argv[2:])
    if argv[:1] == ["dnc"]:
        from . import outbound

        return int(outbound.cli_main(argv[1:]))
    if argv[:1] == ["retention"]:
        from . import retention

        return int(retention.cli_main(argv[1:]))
    if argv[:1] == ["profiles"]:
        from . import profiles

        return int(profiles.cli_main(argv[1:]))
    if argv[:1] == ["prompts"]:
        from .speechcli import prompts_main

        return prompts_main(argv[1:])
    if argv[:1] == ["models"]:
        from .speechcli import models_main

        return models_main(argv[1:])
    if argv[:1] == ["report"]:
        from .report import main as report

        return report(argv[1:])
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
