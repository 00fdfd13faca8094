"""What `hotline run` would refuse, found without opening a socket or a database.

`hotline validate --config` and `hotline run` both call :func:`preflight`, so the server never
fails at start-up on something the validator could have seen: what the ACD router refuses, a
broken main flow, an overflow to a node the main flow lacks, bad calling hours, a bad time
zone or purge time, unreadable TLS files, a default or short CTI secret on a public address.
"""

from __future__ import annotations

from pathlib import Path

from .config import Config


def preflight(config: Config, *, main_flow: bool = True) -> list[str]:
    """Every problem, one line each (flow problems as ``file:line:col: code: message``).
    ``main_flow=False`` leaves out the main flow's own diagnostics (for `validate`, which
    prints every flow's)."""
    import acd
    import ivr

    from . import outbound, retention
    from .flowset import agent_specs, load_flows, queue_specs

    problems: list[str] = []
    try:  # whatever else the router refuses (skill levels, ...), said here and not at run
        acd.build_router(queue_specs(config), agent_specs(config))
    except acd.AcdConfigError as exc:
        problems.append(f"[acd]: {exc}")
    prompt_dirs = [config.path(d) for d in config.prompts.directories]
    try:
        _flows, main = load_flows(config, prompt_dirs)
    except ivr.FlowInvalid as exc:
        if main_flow:
            problems += [f"the main flow is invalid: {d}" for d in exc.diagnostics]
        main = None
    for q in config.acd.queues:
        for o in (q.on_max_wait, q.on_full, q.on_no_agents):
            if main is not None and o is not None and o.kind == "flow_node" and o.target not in main.nodes:
                problems.append(
                    f"queue {q.name} overflows to node '{o.target}', which the main flow {main.path} lacks"
                )
    ob = config.outbound
    try:
        outbound.parse_hours(ob.marketing_hours, ob.holidays)
        if ob.service_hours is not None:
            outbound.parse_hours(ob.service_hours, ob.holidays)
        outbound.zone(ob.timezone)
    except outbound.OutboundConfigError as exc:
        problems.append(f"[outbound]: {exc}")
    try:
        retention.parse_at(config.retention.at)
        outbound.zone(config.retention.timezone)
    except (retention.RetentionConfigError, outbound.OutboundConfigError) as exc:
        problems.append(f"[retention]: {exc}")
    c = config.cti
    from . import exposure  # a default or short secret on a non-loopback CTI address

    addresses = exposure.cti_addresses(c.host, c.http_port, c.http_host)
    for finding in exposure.weak_secrets([(t.name, t.secret) for t in c.tokens], addresses):
        problems.append(f"cannot start: {finding.code}: {finding.message}")
    if c.tls_cert:
        import cti_bridge

        try:
            cti_bridge.tls_context(str(config.path(c.tls_cert)), str(config.path(c.tls_key)))
        except (OSError, ValueError) as exc:
            problems.append(f"[cti] tls_cert/tls_key: cannot load them: {exc}")
    directory = config.path(config.recordings.directory)
    if directory.exists() and not directory.is_dir():
        problems.append(f"[recordings] directory {directory} is a file, not a directory")
    database = config.path(config.storage.database)
    if not Path(database).parent.is_dir():
        problems.append(f"[storage] database: the directory {database.parent} does not exist")
    return problems
