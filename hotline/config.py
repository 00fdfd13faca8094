"""Typed configuration, loaded from ``config.toml``. Every field is documented there.

Relative paths are resolved against the directory of the config file.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import ipaddress
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import acd
import alerts


class ConfigError(Exception):
    """The config file is wrong; the message names the key and how to fix it.

    ``problems`` holds every problem found (one line each); the message joins them."""

    code = "config.invalid"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


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
    pjsip_log_level: int = 1  # pjlib's own verbosity 0-6; its lines are logged as event "pjsip"
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
    scopes: tuple[str, ...] = ("read",)  # read, agent (own agent), supervise (monitoring), control, admin
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
class HttpConfig:
    """The operations endpoints on the HTTP port ([cti] http_port): /metrics, /health, /ready."""

    metrics_public: bool = False  # true: GET /metrics needs no token (a trusted network only)


@dataclass(frozen=True, slots=True)
class AlertRuleConfig:
    metric: str  # service_level, longest_wait, abandon_rate, no_agents, disk_free, outbox_backlog, ...
    threshold: float  # the limit, in the metric's unit (docs/operations.md)
    for_seconds: float = 0.0  # seconds the condition must hold before alert.raised (and clear before cleared)
    severity: str = "warning"  # warning or critical
    queue: str = ""  # only this queue ("" = every queue, for per-queue metrics)


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
    trunk: str = ""  # a [[trunks]] name: callbacks and click-to-dial go out through it; "" = dial_uri


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Kamailio in front of hotline ([proxy]); docs/sip.md. No [proxy] table: no proxy."""

    managed: bool = True  # hotline starts, watches and stops Kamailio; false = you run it
    binary: str = "kamailio"  # the Kamailio program (a name on PATH or a path)
    internal_port: int = 5090  # hotline's own SIP port on 127.0.0.1, behind the proxy
    tls_port: int = 5061  # SIP over TLS on [sip] host; 0 = no TLS
    tls_cert: str = "certs/sip.crt"  # PEM certificate chain for TLS (scripts/setup makes a demo one)
    tls_key: str = "certs/sip.key"  # PEM private key
    realm: str = "hotline"  # digest realm; stored HA1s are bound to it (change it: set passwords again)
    state_dir: str = "proxy"  # the rendered kamailio.cfg and the registrations database
    rpc_socket: str = ""  # Kamailio's JSON-RPC datagram socket; "" = a private one (managed)
    children: int = 2  # Kamailio worker processes per transport
    shm_mb: int = 64  # Kamailio shared memory, MB
    pkg_mb: int = 8  # Kamailio private memory per process, MB
    log_level: int = 1  # Kamailio's debug level: -1 errors only ... 3 debug
    poll_interval: float = 1.0  # seconds between reads of the registrations and the guard
    min_expires: int = 60  # seconds: shortest registration accepted
    max_expires: int = 3600  # seconds: longest registration granted
    default_expires: int = 600  # seconds, when a phone asks for none
    max_contacts: int = 4  # phones per agent at once (a desk phone and a softphone ...)
    rate_window: int = 2  # seconds per counting window of the per-source limits below
    register_limit: int = 20  # REGISTERs per source address per window; more are dropped
    invite_limit: int = 40  # INVITEs per source address per window; more are dropped
    auth_fail_limit: int = 5  # failed authentications from one address before it is blocked
    auth_fail_window: int = 300  # seconds: failures older than this (with none since) are forgotten
    block_seconds: int = 600  # seconds a blocked address gets no answer at all
    max_message_size: int = 8192  # bytes: larger SIP messages get 513
    restart_delay: float = 1.0  # seconds before restarting a Kamailio that died (doubles, at most 30)
    start_timeout: float = 10.0  # seconds Kamailio may take to answer its control socket


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    """A carrier trunk for outgoing calls ([[trunks]])."""

    name: str  # [callbacks] trunk refers to it
    host: str  # the carrier's SIP address, "sip.carrier.example" or "203.0.113.5:5060"
    username: str = ""  # digest user; "" = the carrier needs no authentication
    password: str = ""  # digest password (the carrier's; kept in memory only)
    realm: str = ""  # the carrier's realm; "" = answer any realm it challenges with
    register: bool = False  # register to the carrier (for trunks that need it to send and receive)
    registrar: str = ""  # where to register; "" = host
    expires: int = 300  # seconds per registration
    transport: str = "udp"  # udp or tcp towards the carrier
    from_user: str = ""  # the caller id user part; "" = username (or [sip] user)


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
    whole_call: bool = False  # also record each caller from answer to hang-up: <call_id>-whole.wav (mono)


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
    directories: tuple[str, ...] = ("flows/prompts", "/usr/share/asterisk/sounds/en_US_f_Allison")
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


def _default_keywords() -> dict[str, dict[str, tuple[str, ...]]]:
    return {
        "en": {
            "complaint": ("complaint", "file a complaint", "speak to your manager"),
            "regulator": ("regulator", "ombudsman"),
            "fraud": ("safe account", "transfer to this account"),
        }
    }


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    enabled: bool = False  # live cues (keywords, agitation) on calls waiting for or talking to an agent
    channels: tuple[str, ...] = ("caller",)  # legs heard live: "caller", "agent"
    while_queued: bool = True  # hear callers waiting in a queue too (agitation can raise priority)
    workers: int = 1  # cue worker processes (pocketsphinx holds the GIL: never in the server process)
    max_streams: int = 20  # tapped legs per worker; beyond, new calls get no live cues (alert.raised)
    audio_dir: str = "/dev/shm/hotline/cues"  # tmpfs: each tapped leg is recorded here and tailed
    poll_interval: float = 0.1  # seconds between reads of the taps
    recognizers: dict[str, str] = field(
        default_factory=lambda: {"en": "pocketsphinx"}
    )  # language -> "pocketsphinx" or "vosk:<model dir | package:NAME>"; [speech.models] fill the rest
    keywords: dict[str, dict[str, tuple[str, ...]]] = field(
        default_factory=_default_keywords
    )  # language -> category -> phrases ("phrase /1e-25/" sets a phrase's threshold)
    actions: dict[str, tuple[str, ...]] = field(
        default_factory=dict
    )  # category -> what a hit does: alert, priority, screen_pop, summary
    default_actions: tuple[str, ...] = ("alert", "screen_pop", "summary")  # a category not in `actions`
    min_confidence: float = 0.5  # vosk spotter: least word confidence of a phrase
    agitation_level: float = 0.6  # 0..1: call.agitation when a window's score reaches it ...
    agitation_clear: float = 0.4  # ... and again (cleared) once one falls under this
    agitation_min_interval: float = 30.0  # seconds between two raises on one channel
    agitation_actions: tuple[str, ...] = ("alert", "priority", "screen_pop", "summary")
    agitation_window: float = 3.0  # seconds of audio per agitation score
    baseline_seconds: float = 6.0  # seconds of the caller's first speech that make their baseline
    priority_boost: int = 3  # the "priority" action: added once to a queued caller's priority


@dataclass(frozen=True, slots=True)
class QaConfig:
    enabled: bool = False  # transcribe and score every call recording after the call
    workers: int = 1  # transcriber processes
    nice: int = 10  # added to their nice value: the kernel serves live calls first
    idle: bool = True  # and SCHED_IDLE (Linux): they run only on otherwise idle CPU
    silence_seconds: float = 8.0  # a silence of both channels longer than this is flagged
    overtalk_seconds: float = 1.0  # both talking at once for longer than this counts as overtalk
    keep_sentiment: int = 10  # calls per caller whose sentiment the profile keeps
    lexicons: dict[str, str] = field(
        default_factory=dict
    )  # language -> VADER-format lexicon file; en = VADER's own
    scripts: dict[str, dict[str, tuple[str, ...]]] = field(
        default_factory=dict
    )  # queue -> item -> phrases the agent should say (any one)


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
    dispositions: tuple[str, ...] = ()  # wrap-up codes for this queue; () = [acd] dispositions


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str  # also the SIP username the agent's softphone registers with
    contact: str = ""  # SIP URI rung for offers; "" = where the softphone registered ([proxy])
    password: str = ""  # SIP password (demo setups); hashed at load; see `hotline agents passwd`
    ha1: str = ""  # or md5(id:realm:password) in hex, instead of password
    media_encryption: str = "none"  # none, optional (offer SRTP, accept RTP) or srtp (SRTP only, TLS phones)
    name: str = ""
    skills: tuple[str, ...] | dict[str, int] = ()  # names (proficiency 5) or name -> proficiency 1-5
    queues: dict[str, int] | None = None  # queue -> this agent's priority for it (higher first)
    wrap_up: float = -1.0  # seconds of wrap-up after each call; -1 = the queue's
    autologin: bool = False  # log in and go ready at start-up


@dataclass(frozen=True, slots=True)
class AcdConfig:
    queues: tuple[QueueConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    dispositions: tuple[str, ...] = ()  # wrap-up codes for queues without their own (and click-to-dial)
    # the not-ready reasons the /agent page offers
    not_ready_reasons: tuple[str, ...] = ("break", "lunch", "meeting", "training", "coaching")


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
    http: HttpConfig = field(default_factory=HttpConfig)
    alerts: tuple[AlertRuleConfig, ...] | None = None  # no [[alerts]]: the built-in rules
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    qa: QaConfig = field(default_factory=QaConfig)
    mqtt: MqttConfig | None = None  # no [mqtt] table: nothing MQTT runs
    proxy: ProxyConfig | None = None  # no [proxy] table: hotline answers SIP itself, no registrar
    trunks: tuple[TrunkConfig, ...] = ()
    base_dir: Path = Path(".")  # the config file's directory; not a TOML key

    def path(self, value: str) -> Path:
        """A configured path, with ~ expanded and relative to the config file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def recognizers(self) -> dict[str, str]:
        """[analytics.recognizers], plus "vosk:<model>" for each [speech.models] language not in it."""
        out = {lang: f"vosk:{spec}" for lang, spec in self.speech_models().items()}
        for lang, spec in self.analytics.recognizers.items():
            out[lang] = spec if not spec.startswith("vosk:") or spec.startswith("vosk:package:") else (
                "vosk:" + str(self.path(spec[5:]))
            )
        return out

    def speech_models(self) -> dict[str, str]:
        """[speech.models] with model paths made relative to the config file (package:NAME as is)."""
        return {
            lang: spec if spec.startswith("package:") else str(self.path(spec))
            for lang, spec in self.speech.models.items()
        }


def _build(cls: type[Any], table: Any, where: str, errors: list[str]) -> Any:
    """``cls`` from a TOML table; each problem is appended to ``errors`` (all of them, not the
    first). Returns None when this table (or one inside it) had a problem."""
    if not isinstance(table, dict):
        errors.append(f"{where} must be a table")
        return None
    before = len(errors)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "base_dir"}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            guess = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else f" (known keys: {', '.join(sorted(names))})"
            errors.append(f"{where}: unknown key '{key}'{hint}")
            continue
        kwargs[key] = _value(hints[key], value, f"{where}.{key}", errors)
    for f in dataclasses.fields(cls):
        if (
            f.name in names
            and f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            errors.append(f"{where}: '{f.name}' is required")
    if len(errors) > before:
        return None
    return cls(**kwargs)


def _value(hint: Any, value: Any, where: str, errors: list[str]) -> Any:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):  # a TOML value is never None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        for option in options[:-1]:
            scratch: list[str] = []
            found = _value(option, value, where, scratch)
            if not scratch:
                return found
        hint = options[-1]
    origin = typing.get_origin(hint)
    if origin is dict:
        _key, item_hint = typing.get_args(hint)
        if not isinstance(value, dict):
            errors.append(f"{where} must be a table like {{ name = 1 }}")
            return None
        return {str(k): _value(item_hint, v, f"{where}.{k}", errors) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, where, errors)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            errors.append(f"{where} must be a list")
            return None
        return tuple(_value(item, v, f"{where}[{i}]", errors) for i, v in enumerate(value))
    expected: Any = {str: str, int: int, float: (int, float), bool: bool}[hint]
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        errors.append(f"{where} must be a {hint.__name__}, not {value!r}")
        return None
    return float(value) if hint is float else value


def load_config(path: str | Path) -> Config:
    """Read, type-check and cross-check a config file. Raises :class:`ConfigError` listing
    every problem found (unknown keys, wrong types, and values that contradict each other)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
    errors: list[str] = []
    # each table on its own, so a mistake in one does not hide those in the others
    hints = typing.get_type_hints(Config)
    tables: dict[str, Any] = {}
    failed: set[str] = set()
    table_names = [f.name for f in dataclasses.fields(Config) if f.name != "base_dir"]
    for key in sorted(set(data) - set(table_names)):
        guess = difflib.get_close_matches(key, table_names, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else f" (tables: {', '.join(table_names)})"
        errors.append(f"{p.name}: unknown table '{key}'{hint}")
    for f in dataclasses.fields(Config):
        if f.name == "base_dir" or f.name not in data:
            continue
        before = len(errors)
        value = _value(hints[f.name], data[f.name], f"{p.name}: {f.name}", errors)
        if len(errors) > before:
            failed.add(f.name)
        else:
            tables[f.name] = value
    config = dataclasses.replace(Config(**tables), base_dir=p.resolve().parent)
    errors += _problems(config, p.name, failed)
    if errors:
        many = f"{p.name}: {len(errors)} problems:\n  " + "\n  ".join(errors)
        raise ConfigError(errors[0] if len(errors) == 1 else many, errors)
    return _hash_passwords(config)


def ha1(username: str, realm: str, password: str) -> str:
    """The digest HA1 a registrar stores instead of the password (md5 of user:realm:password)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def _hash_passwords(config: Config) -> Config:
    """Agents' plain SIP passwords become HA1 at once: nothing after the loader sees them."""
    realm = config.proxy.realm if config.proxy is not None else ProxyConfig().realm
    agents = tuple(
        dataclasses.replace(a, password="", ha1=ha1(a.id, realm, a.password)) if a.password else a
        for a in config.acd.agents
    )
    return dataclasses.replace(config, acd=dataclasses.replace(config.acd, agents=agents))


def load_config_or_report(path: str | Path) -> Config | None:
    """For commands: the config, or None after printing why it is unusable to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"hotline: {problem}", file=sys.stderr)
        return None


def _problems(config: Config, where: str, failed: set[str]) -> list[str]:
    """Every value that contradicts another (or a fixed list), as one line each. Tables in
    ``failed`` did not load and are not cross-checked (their defaults would mislead)."""
    out: list[str] = []
    acd_ok = "acd" not in failed
    queues = {q.name for q in config.acd.queues}
    if acd_ok and len(queues) != len(config.acd.queues):
        out.append(f"{where}: two [[acd.queues]] share a name")
    for q in config.acd.queues if acd_ok else ():
        if q.strategy not in acd.BUILTIN_STRATEGIES:
            guess = difflib.get_close_matches(q.strategy, list(acd.BUILTIN_STRATEGIES), n=1)
            out.append(
                f"{where}: queue {q.name}: strategy '{q.strategy}' is unknown"
                + (f" (did you mean '{guess[0]}'?)" if guess else "")
                + f"; use one of {', '.join(acd.BUILTIN_STRATEGIES)}"
            )
        for label, flow in (
            ("on_max_wait", q.on_max_wait),
            ("on_full", q.on_full),
            ("on_no_agents", q.on_no_agents),
        ):
            if flow is None:
                continue
            if flow.kind not in ("queue", "voicemail", "callback", "flow_node"):
                out.append(
                    f"{where}: queue {q.name}: {label} kind '{flow.kind}' is unknown; "
                    "use queue, voicemail, callback or flow_node"
                )
            elif flow.kind == "callback" and flow.target not in queues:
                out.append(f"{where}: queue {q.name}: {label} callback queue '{flow.target}' is not a queue")
            elif flow.kind == "queue" and flow.target not in queues:
                out.append(f"{where}: queue {q.name}: {label} target '{flow.target}' is not a queue")
    for q in config.acd.queues if acd_ok else ():
        for code in [*q.dispositions, *config.acd.dispositions]:
            if not code or not all(ch.isalnum() or ch in "_-" for ch in code):
                out.append(f"{where}: queue {q.name}: disposition '{code}' must be letters, digits, _ or -")
    ids = [a.id for a in config.acd.agents]
    if acd_ok and len(set(ids)) != len(ids):
        out.append(f"{where}: two [[acd.agents]] share an id")
    for agent in config.acd.agents if acd_ok else ():
        if agent.contact and not agent.contact.startswith(("sip:", "sips:")):
            out.append(f"{where}: agent {agent.id}: contact must be a SIP URI like sip:1001@10.0.0.5")
        if not agent.contact and config.proxy is None:
            out.append(
                f'{where}: agent {agent.id} has no contact: set contact = "sip:...", or add a [proxy] '
                "table so the agent's softphone registers (docs/sip.md)"
            )
        if agent.media_encryption not in ("none", "optional", "srtp"):
            out.append(f"{where}: agent {agent.id}: media_encryption must be none, optional or srtp")
        if agent.media_encryption != "none" and (config.proxy is None or not config.proxy.tls_port):
            out.append(
                f"{where}: agent {agent.id}: media_encryption needs a [proxy] table with tls_port "
                "(SRTP keys travel in the SDP, so only over TLS)"
            )
        if agent.ha1 and (len(agent.ha1) != 32 or any(c not in "0123456789abcdef" for c in agent.ha1)):
            out.append(f"{where}: agent {agent.id}: ha1 must be 32 lowercase hex digits")
        if agent.password and agent.ha1:
            out.append(f"{where}: agent {agent.id}: give password or ha1, not both")
        for name in sorted(set(agent.queues or {}) - queues):
            guess = difflib.get_close_matches(name, sorted(queues), n=1)
            out.append(
                f"{where}: agent {agent.id}: queues names '{name}', which is not a queue"
                + (f" (did you mean '{guess[0]}'?)" if guess else f"; queues: {', '.join(sorted(queues))}")
            )
    if "trunks" not in failed and "proxy" not in failed and "callbacks" not in failed:
        out += _sip_edge_problems(config, where)
    for t in config.sip.transports if "sip" not in failed else ():
        if t not in ("udp", "tcp"):
            out.append(f"{where}: sip.transports: '{t}' is not one of udp, tcp")
    if "sip" not in failed:
        sip = config.sip
        for proxy in sip.trusted_proxies:
            try:
                ipaddress.ip_address(proxy)
            except ValueError:
                out.append(
                    f"{where}: sip.trusted_proxies: '{proxy}' is not an IP address (the proxy's, as its "
                    "packets arrive, e.g. 127.0.0.1)"
                )
        if sip.handshake_timeout <= 0 or sip.per_source_unconfirmed < 1 or sip.per_source_rate <= 0:
            out.append(
                f"{where}: sip.handshake_timeout, per_source_unconfirmed and per_source_rate must be above 0"
            )
        if sip.per_source_calls < 0 or sip.per_source_burst < 1:
            out.append(
                f"{where}: sip.per_source_calls must be 0 (automatic) or more, per_source_burst 1 or more"
            )
    if config.retention.days < 0:
        out.append(f"{where}: retention.days must be 0 (keep forever) or more")
    if "cti" not in failed:
        if config.cti.http_tls and not config.cti.tls_cert:
            out.append(f"{where}: cti.http_tls needs cti.tls_cert and cti.tls_key")
        if config.cti.caller_mask not in ("none", "last4", "all"):
            out.append(f"{where}: cti.caller_mask must be none, last4 or all")
        for token in config.cti.tokens:
            bad = set(token.scopes) - {"read", "agent", "supervise", "control", "admin"}
            if bad:
                out.append(
                    f"{where}: cti token {token.name}: unknown scope(s) {sorted(bad)}; "
                    "use read, agent, supervise, control, admin"
                )
            if "agent" in token.scopes and not token.agent:
                out.append(f'{where}: cti token {token.name}: scope agent needs `agent = "<agent id>"`')
        if not config.cti.tokens:
            out.append(
                f"{where}: [[cti.tokens]] is empty; the CTI socket admits no anonymous clients, add a token"
            )
    if not 0 <= config.sip.pjsip_log_level <= 6:
        out.append(f"{where}: sip.pjsip_log_level must be 0 (nothing) to 6 (everything)")
    if config.server.log_format not in ("auto", "json", "console"):
        out.append(f"{where}: server.log_format must be auto, json or console")
    if config.server.log_level.lower() not in ("debug", "info", "warning", "error"):
        out.append(f"{where}: server.log_level must be debug, info, warning or error")
    for i, rule in enumerate(config.alerts or ()):
        at = f"{where}: alerts[{i}] ({rule.metric})"
        if rule.metric not in alerts.METRICS:
            guess = difflib.get_close_matches(rule.metric, list(alerts.METRICS), n=1)
            out.append(
                f"{where}: alerts[{i}]: metric '{rule.metric}' is unknown"
                + (f" (did you mean '{guess[0]}'?)" if guess else f"; use one of {', '.join(alerts.METRICS)}")
            )
        if rule.severity not in ("warning", "critical"):
            out.append(f"{at}: severity must be warning or critical, not '{rule.severity}'")
        if rule.for_seconds < 0:
            out.append(f"{at}: for_seconds must be 0 or more")
        if rule.queue and acd_ok and rule.queue not in queues:
            out.append(f"{at}: queue '{rule.queue}' is not a queue")
    if "analytics" not in failed:
        out += _analytics_problems(config, where)
    return out


def _analytics_problems(config: Config, where: str) -> list[str]:
    out: list[str] = []
    a = config.analytics
    bad_channels = set(a.channels) - {"caller", "agent"}
    if bad_channels:
        out.append(f"{where}: analytics.channels: {sorted(bad_channels)}; use caller and/or agent")
    for category, actions in [*a.actions.items(), ("default_actions", a.default_actions),
                              ("agitation_actions", a.agitation_actions)]:  # fmt: skip
        bad = set(actions) - {"alert", "priority", "screen_pop", "summary"}
        if bad:
            out.append(
                f"{where}: analytics actions of {category}: {sorted(bad)}; "
                "use alert, priority, screen_pop, summary"
            )
    if not 0 <= a.agitation_clear <= a.agitation_level <= 1:
        out.append(f"{where}: analytics: need 0 <= agitation_clear <= agitation_level <= 1")
    from analytics.keywords import KeywordError, parse_phrases

    for language, lists in a.keywords.items():
        try:
            parse_phrases(lists)
        except KeywordError as exc:
            out.append(f"{where}: analytics.keywords.{language}: {exc}")
    for language, spec in a.recognizers.items():
        if spec != "pocketsphinx" and not (spec.startswith("vosk:") and len(spec) > 5):
            out.append(
                f'{where}: analytics.recognizers.{language} = "{spec}": use "pocketsphinx" or "vosk:<model>"'
            )
    return out


def _check(config: Config, where: str) -> None:
    """Raise :class:`ConfigError` with every cross-field problem of a loaded config."""
    problems = _problems(config, where, set())
    if problems:
        raise ConfigError("\n".join(problems), problems)


def _sip_edge_problems(config: Config, where: str) -> list[str]:
    out: list[str] = []
    trunks = [t.name for t in config.trunks]
    if len(set(trunks)) != len(trunks):
        out.append(f"{where}: two [[trunks]] share a name")
    for t in config.trunks:
        if t.transport not in ("udp", "tcp"):
            out.append(f"{where}: trunk {t.name}: transport must be udp or tcp")
        if t.host.startswith(("sip:", "sips:")) or "@" in t.host:
            out.append(f'{where}: trunk {t.name}: host is an address like "sip.carrier.example:5060"')
        if t.register and not t.username:
            out.append(f"{where}: trunk {t.name}: register = true needs username and password")
    if config.callbacks.trunk and config.callbacks.trunk not in trunks:
        out.append(
            f"{where}: callbacks.trunk '{config.callbacks.trunk}' is not a [[trunks]] name"
            + (f" (known: {', '.join(trunks)})" if trunks else "")
        )
    p = config.proxy
    if p is None:
        return out
    if p.internal_port in (config.sip.port, p.tls_port):
        out.append(f"{where}: proxy.internal_port must differ from sip.port and proxy.tls_port")
    if p.tls_port and p.tls_port == config.sip.port:
        out.append(f"{where}: proxy.tls_port must differ from sip.port")
    if p.tls_port and not (p.tls_cert and p.tls_key):
        out.append(f"{where}: proxy.tls_port needs proxy.tls_cert and proxy.tls_key (or tls_port = 0)")
    if not 0 < p.min_expires <= p.default_expires <= p.max_expires:
        out.append(f"{where}: proxy: need 0 < min_expires <= default_expires <= max_expires")
    for key in ("rate_window", "register_limit", "invite_limit", "auth_fail_limit", "block_seconds"):
        if getattr(p, key) < 1:
            out.append(f"{where}: proxy.{key} must be 1 or more")
    if p.max_message_size < 1500:
        out.append(f"{where}: proxy.max_message_size must be at least 1500 bytes")
    if not p.realm or any(c in p.realm for c in ' "\\'):
        out.append(f"{where}: proxy.realm must be a non-empty word without quotes or spaces")
    return out
