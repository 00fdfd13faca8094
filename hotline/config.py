"""Typed configuration, loaded from ``config.toml``. Every field is documented there.

Relative paths are resolved against the directory of the config file.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The config file is wrong; the message names the key and how to fix it."""

    code = "config.invalid"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    node: str = "hotline-1"  # this server's name in events and MQTT topics
    log_format: str = "auto"  # "json", "console", or "auto" (console on a terminal)
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class SipConfig:
    host: str = "0.0.0.0"  # address SIP and RTP bind to
    public_host: str = ""  # address written into SDP/Contact; empty = host (or 127.0.0.1 for 0.0.0.0)
    port: int = 5060  # SIP port, UDP and TCP
    transports: tuple[str, ...] = ("udp", "tcp")
    rtp_port: int = 10000  # first RTP port; each call uses two from here up
    max_calls: int = 1024  # concurrent calls, caller and agent legs counted apart
    clock_rate: int = 8000  # conference bridge clock in Hz; 8000 suits G.711 (no resampling)
    user: str = "hotline"  # user part of our SIP identity
    auto_answer: bool = True  # answer every incoming call at once; false = ring until CTI call.answer
    handshake_timeout: float = 5.0  # seconds an answered call may wait for its ACK; then it is dropped
    per_source_calls: int = 0  # calls up at once from one source address; 0 = three quarters of max_calls
    per_source_unconfirmed: int = 20  # calls from one source not yet ACKed (or still ringing)
    per_source_rate: float = 20.0  # new INVITEs per second from one source, sustained ...
    per_source_burst: int = 60  # ... after a burst of this many
    trusted_proxies: tuple[str, ...] = ()  # proxies whose X-Hotline-Source header names the real source


@dataclass(frozen=True, slots=True)
class TokenConfig:
    name: str  # who holds the token; logged instead of the secret
    secret: str
    scopes: tuple[str, ...] = ("read",)  # read (subscribe), agent (own agent), control (all), admin
    agent: str = ""  # with scope "agent": the agent id this token may act for


@dataclass(frozen=True, slots=True)
class CtiConfig:
    host: str = "127.0.0.1"
    port: int = 7011  # NDJSON over TCP
    tokens: tuple[TokenConfig, ...] = ()
    retain_seconds: float = 604800.0  # events kept for `since` replay: 7 days ...
    retain_events: int = 1_000_000  # ... and at most this many
    caller_mask: str = "none"  # caller numbers in call.ended summaries and sidecars: none, last4, all
    tls_port: int = 7012  # the same protocol over TLS, when tls_cert is set
    tls_cert: str = ""  # PEM certificate chain; "" = no TLS listener
    tls_key: str = ""  # PEM private key
    http_port: int = 7080  # WebSocket at /cti and GET /recordings/<call_id>; 0 = no HTTP port
    http_host: str = ""  # "" = host
    http_tls: bool = False  # serve the HTTP port over TLS (needs tls_cert)
    auth_timeout: float = 10.0  # seconds a connection may stay unauthenticated


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "127.0.0.1"  # broker address
    port: int = 1883
    topic_prefix: str = "hotline"  # topics: <prefix>/<server.node>/<event name, dots as slashes>
    client_id: str = ""  # "" = hotline-<server.node>
    username: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True)
class StatsConfig:
    service_level_threshold: float = 20.0  # seconds: answered within this counts as in service level
    service_level_target: float = 0.80  # 0..1, reported beside the figures (80/20)
    short_abandon_threshold: float = 5.0  # seconds: abandons sooner than this are "short", counted apart
    interval: float = 900.0  # seconds per roll-up row written to the database (15 minutes)
    publish_every: float = 30.0  # seconds between queue.stats events (0 = never)


@dataclass(frozen=True, slots=True)
class CallbacksConfig:
    dial_uri: str = "sip:{number}@127.0.0.1:5080"  # how a callback's customer is dialled (your trunk)


def _default_marketing_hours() -> dict[str, tuple[str, ...]]:
    week = {d: ("09:00-20:00",) for d in ("mon", "tue", "wed", "thu", "fri")}
    return {**week, "sat": ("10:00-16:00",)}


@dataclass(frozen=True, slots=True)
class OutboundConfig:
    database: str = ""  # SQLite file of the do-not-call list; "" = [storage] database
    timezone: str = ""  # IANA zone for calling hours when the callee's is unknown; "" = the server's
    marketing_hours: dict[str, tuple[str, ...]] = field(
        default_factory=_default_marketing_hours
    )  # weekday -> "HH:MM-HH:MM"
    service_hours: dict[str, tuple[str, ...]] | None = None  # same form; absent = service calls at any time
    holidays: tuple[str, ...] = ()  # "2026-12-25" (once) or "12-25" (yearly): no calls held to hours


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    days: int = 0  # purge calls and recordings that ended more than this many days ago; 0 = keep forever
    at: str = "03:30"  # local time of the daily purge
    timezone: str = ""  # IANA zone of `at`; "" = the server's


@dataclass(frozen=True, slots=True)
class StorageConfig:
    database: str = "hotline.db"  # SQLite file for call records


@dataclass(frozen=True, slots=True)
class RecordingsConfig:
    directory: str = "recordings"  # stereo WAVs: caller left, agent right


@dataclass(frozen=True, slots=True)
class FlowsConfig:
    directory: str = "flows"
    main: str = "main"  # flow (file stem) that answers incoming calls
    reload_interval: float = 1.0  # seconds between checks of the directory for edits; 0 = no hot reload


@dataclass(frozen=True, slots=True)
class ProfilesConfig:
    database: str = ""  # SQLite file for caller profiles and recent contacts; "" = [storage] database
    http_url: str = ""  # CRM lookup, e.g. "https://crm.example/callers/{number}"; "" = none
    http_timeout: float = 1.5  # seconds a new call waits for the profile at most
    resume_window: float = 600.0  # seconds after a dropped call that a call back is offered to resume
    recent_window: float = 86400.0  # seconds of past calls shown to flows as caller.recent


@dataclass(frozen=True, slots=True)
class PromptsConfig:
    directories: tuple[str, ...] = ("flows/prompts", "/usr/share/asterisk/sounds/en")
    tts_cache: str = "~/.cache/hotline/tts"  # synthesized prompts, keyed by text, voice and rate
    tts_voice: str = "en"  # espeak-ng voice
    tts_rate: int = 160  # words per minute
    tts_voices: dict[str, str] = field(default_factory=dict)  # language -> espeak-ng voice
    tts_workers: int = 2  # synthesis processes (one engine each): dynamic prompts of many calls at once


@dataclass(frozen=True, slots=True)
class SpeechConfig:
    models: dict[str, str] = field(default_factory=dict)  # language -> model dir, or package:NAME
    threshold_db: float = -40.0  # dBFS per 20 ms frame: louder is voice (barge-in, start of speech)
    start_min: float = 0.12  # seconds of voice that count as the caller speaking (barge-in)
    trailing_silence: float = 0.3  # seconds of silence that end an answer to a grammar
    transcription_trailing_silence: float = 0.8  # the same for free transcription (people pause)
    max_utterance: float = 10.0  # seconds: an answer is cut off here
    min_confidence: float = 0.0  # 0..1: a match below it is a no-match
    accept_margin: float = 1.0  # lattice score units a phrase may trail the out-of-grammar decoys by
    reject_out_of_grammar: bool = True  # decoy syllables catch out-of-grammar speech (no [unk] needed)
    max_recognizers: int = 60  # live recognizers; beyond it new inputs are DTMF only (alert.raised)
    max_rtf: float = 0.5  # decode seconds per audio second (EWMA); beyond it, DTMF only
    clear_hold: float = 10.0  # seconds load must stay low before alert.cleared
    workers: int = 2  # recognizer threads (Vosk releases the GIL)
    result_timeout: float = 1.5  # seconds a final result may take after the end of speech
    audio_dir: str = "/dev/shm/hotline"  # tmpfs: where each call's ear is recorded and tailed
    poll_interval: float = 0.01  # seconds between reads of the ear file


@dataclass(frozen=True, slots=True)
class RelaxConfig:
    after: float  # seconds of waiting after which this step applies
    min_level: int = 0  # lower every skill minimum to at most this level (0 = unchanged)
    drop: tuple[str, ...] = ()  # skills no longer required


@dataclass(frozen=True, slots=True)
class OverflowConfig:
    kind: str  # "queue", "voicemail", "callback" (in queue `target`) or "flow_node" (node `target`)
    target: str = ""  # a queue name (queue, callback) or a node of the main flow (flow_node)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    skills: tuple[str, ...] | dict[str, int] = ()  # names, or name -> minimum proficiency 1-5
    strategy: str = "longest_idle"  # longest_idle, fewest_calls, round_robin, ring_all, best_proficiency
    ring_timeout: float = 15.0  # seconds an agent rings before the next is tried
    wrap_up: float = 5.0  # seconds after each call before the agent is offered another
    max_no_answer: int = 3  # consecutive unanswered offers before the agent goes not-ready
    retry_delay: float = 5.0  # seconds before the same agent is offered the same call again
    aging_seconds: float = 60.0  # seconds of waiting worth one priority level (0 = strict priority)
    relax: tuple[RelaxConfig, ...] = ()  # skill relaxation steps by waiting time
    max_wait: float = 0.0  # seconds in line before on_max_wait applies (0 = no limit)
    max_waiting: int = 0  # callers held before on_full applies (0 = no limit)
    on_max_wait: OverflowConfig | None = None
    on_full: OverflowConfig | None = None
    on_no_agents: OverflowConfig | None = None  # when no logged-in agent can serve the queue
    callback_retry_delay: float = 300.0  # seconds between two attempts to reach a callback's customer
    callback_max_attempts: int = 3  # attempts before a callback is given up
    default_aht: float = 180.0  # seconds: the handle time EWT assumes before any call was handled
    preferred_seconds: float = 0.0  # seconds a returning caller's last agent is tried alone (0 = off)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str
    contact: str  # SIP URI rung for offers; agent.login may override it
    name: str = ""
    skills: tuple[str, ...] | dict[str, int] = ()  # names (proficiency 5) or name -> proficiency 1-5
    queues: dict[str, int] | None = None  # queue -> this agent's priority for it (higher first)
    wrap_up: float = -1.0  # seconds of wrap-up after each call; -1 = the queue's
    autologin: bool = False  # log in and go ready at start-up


@dataclass(frozen=True, slots=True)
class AcdConfig:
    queues: tuple[QueueConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    cti: CtiConfig = field(default_factory=CtiConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    acd: AcdConfig = field(default_factory=AcdConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    mqtt: MqttConfig | None = None  # no [mqtt] table: nothing MQTT runs
    base_dir: Path = Path(".")  # the config file's directory; not a TOML key

    def path(self, value: str) -> Path:
        """A configured path, with ~ expanded and relative to the config file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def speech_models(self) -> dict[str, str]:
        """[speech.models] with model paths made relative to the config file (package:NAME as is)."""
        return {
            lang: spec if spec.startswith("package:") else str(self.path(spec))
            for lang, spec in self.speech.models.items()
        }


def _build(cls: type[Any], table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "base_dir"}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            guess = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else f" (known keys: {', '.join(sorted(names))})"
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
        kwargs[key] = _value(hints[key], value, f"{where}.{key}")
    for f in dataclasses.fields(cls):
        if (
            f.name in names
            and f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            raise ConfigError(f"{where}: '{f.name}' is required")
    return cls(**kwargs)


def _value(hint: Any, value: Any, where: str) -> Any:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):  # a TOML value is never None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        for option in options[:-1]:
            try:
                return _value(option, value, where)
            except ConfigError:
                continue
        hint = options[-1]
    origin = typing.get_origin(hint)
    if origin is dict:
        _key, item_hint = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table like {{ name = 1 }}")
        return {str(k): _value(item_hint, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, where)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        return tuple(_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    expected = {str: str, int: int, float: (int, float), bool: bool}[hint]
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where} must be a {hint.__name__}, not {value!r}")
    return float(value) if hint is float else value


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
    config: Config = _build(Config, data, p.name)
    config = dataclasses.replace(config, base_dir=p.resolve().parent)
    _check(config, p.name)
    return config


def load_config_or_report(path: str | Path) -> Config | None:
    """For commands: the config, or None after printing why it is unusable to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return None


def _check(config: Config, where: str) -> None:
    queues = {q.name for q in config.acd.queues}
    if len(queues) != len(config.acd.queues):
        raise ConfigError(f"{where}: two [[acd.queues]] share a name")
    for q in config.acd.queues:
        for label, flow in (
            ("on_max_wait", q.on_max_wait),
            ("on_full", q.on_full),
            ("on_no_agents", q.on_no_agents),
        ):
            if flow is None:
                continue
            if flow.kind not in ("queue", "voicemail", "callback", "flow_node"):
                raise ConfigError(
                    f"{where}: queue {q.name}: {label} kind '{flow.kind}' is unknown; "
                    "use queue, voicemail, callback or flow_node"
                )
            if flow.kind == "callback" and flow.target not in queues:
                raise ConfigError(
                    f"{where}: queue {q.name}: {label} callback queue '{flow.target}' is not a queue"
                )
            if flow.kind == "queue" and flow.target not in queues:
                raise ConfigError(f"{where}: queue {q.name}: {label} target '{flow.target}' is not a queue")
    ids = [a.id for a in config.acd.agents]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: two [[acd.agents]] share an id")
    for agent in config.acd.agents:
        if not agent.contact.startswith(("sip:", "sips:")):
            raise ConfigError(f"{where}: agent {agent.id}: contact must be a SIP URI like sip:1001@10.0.0.5")
    for t in config.sip.transports:
        if t not in ("udp", "tcp"):
            raise ConfigError(f"{where}: sip.transports: '{t}' is not one of udp, tcp")
    for proxy in config.sip.trusted_proxies:
        try:
            ipaddress.ip_address(proxy)
        except ValueError:
            raise ConfigError(
                f"{where}: sip.trusted_proxies: '{proxy}' is not an IP address (the proxy's, as its "
                "packets arrive, e.g. 127.0.0.1)"
            ) from None
    sip = config.sip
    if sip.handshake_timeout <= 0 or sip.per_source_unconfirmed < 1 or sip.per_source_rate <= 0:
        raise ConfigError(
            f"{where}: sip.handshake_timeout, per_source_unconfirmed and per_source_rate must be above 0"
        )
    if sip.per_source_calls < 0 or sip.per_source_burst < 1:
        raise ConfigError(
            f"{where}: sip.per_source_calls must be 0 (automatic) or more, per_source_burst 1 or more"
        )
    if config.retention.days < 0:
        raise ConfigError(f"{where}: retention.days must be 0 (keep forever) or more")
    if config.cti.http_tls and not config.cti.tls_cert:
        raise ConfigError(f"{where}: cti.http_tls needs cti.tls_cert and cti.tls_key")
    if config.cti.caller_mask not in ("none", "last4", "all"):
        raise ConfigError(f"{where}: cti.caller_mask must be none, last4 or all")
    if config.server.log_format not in ("auto", "json", "console"):
        raise ConfigError(f"{where}: server.log_format must be auto, json or console")
    for token in config.cti.tokens:
        bad = set(token.scopes) - {"read", "agent", "control", "admin"}
        if bad:
            raise ConfigError(
                f"{where}: cti token {token.name}: unknown scope(s) {sorted(bad)}; "
                "use read, agent, control, admin"
            )
        if "agent" in token.scopes and not token.agent:
            raise ConfigError(f'{where}: cti token {token.name}: scope agent needs `agent = "<agent id>"`')
    if not config.cti.tokens:
        raise ConfigError(
            f"{where}: [[cti.tokens]] is empty; the CTI socket admits no anonymous clients, add a token"
        )
