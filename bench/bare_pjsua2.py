"""The baseline for bench/sip_capacity.py: bare pjsua2 running the same call script as
hotline (bench/workload.py), with the same endpoint settings (8 kHz bridge, threadCnt 0,
mainThreadOnly, pumped every 4 ms from one loop, callbacks only queue work) and no IVR
interpreter, ACD, CTI, events or database.

Modes: `ivr` (and `cps`): answer, record the caller from answer to hang-up, greeting, menu,
the digit, a beep, hold music (a new player each time it ends) until the caller hangs up.
`full`: the same without the whole-call recording; at the digit the caller is queued for a
free agent (one call each, first come first served), and when the agent answers the hold
stops, the two are bridged and each side is recorded until hang-up.

On SIGTERM it prints one JSON line with what it did: calls answered, players and recorders
created, recorder files finished, digits heard. Recording files are named by a per-process
sequence number, so no two calls share one.

    python bench/bare_pjsua2.py --port 5090 --record-dir DIR [--mode full --agents URI,...]
"""

from __future__ import annotations

import argparse
import gc
import heapq
import itertools
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pjsua2 as pj

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workload as wl

PUMP = 0.004


class App:
    def __init__(self, mode: str, record_dir: Path, agents: list[str]) -> None:
        self.mode, self.record_dir = mode, record_dir
        self.prompts = {n: wl.prompt(n) for n in (wl.GREETING, wl.MENU, wl.AFTER_DIGIT, wl.HOLD)}
        self.lengths = {n: wl.wav_seconds(p) for n, p in self.prompts.items()}
        self.free_agents: deque[str] = deque(agents)
        self.waiting: deque[Caller] = deque()
        self.legs: set[Leg] = set()
        self.work: deque[Callable[[], None]] = deque()  # what callbacks asked for, run after the pump
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.tie = itertools.count()
        self.seq = itertools.count(1)
        self.counts = {"answered": 0, "players": 0, "recorders": 0, "wavs_finished": 0, "digits": 0}
        self.acc: Account | None = None

    def later(self, seconds: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + seconds, next(self.tie), fn))

    def run_due(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            heapq.heappop(self.timers)[2]()
        while self.work:
            self.work.popleft()()

    def player(self, name: str, loop: bool = False) -> pj.AudioMediaPlayer:
        p = pj.AudioMediaPlayer()
        p.createPlayer(str(self.prompts[name]), 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        self.counts["players"] += 1
        return p

    def recorder(self, path: Path) -> pj.AudioMediaRecorder:
        r = pj.AudioMediaRecorder()
        r.createRecorder(str(path))
        self.counts["recorders"] += 1
        return r

    def finish(self, recorders: list[pj.AudioMediaRecorder]) -> None:
        self.counts["wavs_finished"] += len(recorders)
        recorders.clear()  # the destructors close the files

    def agent_free(self, uri: str) -> None:
        self.free_agents.append(uri)
        self.dispatch()

    def dispatch(self) -> None:
        while self.waiting and self.free_agents:
            caller = self.waiting.popleft()
            if not caller.gone:
                caller.ring(self.free_agents.popleft())


class Leg(pj.Call):  # type: ignore[misc]
    """One pjsua2 call; callbacks only queue work for the loop."""

    def __init__(self, app: App, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.app = app
        self.confirmed = self.media = self.started = self.gone = False
        self.recorders: list[pj.AudioMediaRecorder] = []
        app.legs.add(self)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        state = self.getInfo().state
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
            self.app.work.append(self.maybe_start)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.gone:
            self.gone = True
            self.app.work.append(self.ended)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        ci = self.getInfo()  # keep it alive: iterating a temporary's .media reads freed memory
        if any(m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE for m in ci.media):
            self.media = True
            self.app.work.append(self.maybe_start)

    def maybe_start(self) -> None:
        if self.confirmed and self.media and not self.started and not self.gone:
            self.started = True
            self.start()

    def start(self) -> None: ...

    def ended(self) -> None:
        self.app.finish(self.recorders)
        self.app.legs.discard(self)  # media first (above), then the call


class Caller(Leg):
    def __init__(self, app: App, acc: pj.Account, call_id: int) -> None:
        super().__init__(app, acc, call_id)
        self.player: pj.AudioMediaPlayer | None = None
        self.stage = "new"  # greeting, menu, after_digit, hold, talking
        self.agent: Agent | None = None
        self.seq = 0

    def play(self, name: str, loop: bool = False) -> None:
        self.player = None  # the destructor stops the last one
        self.player = self.app.player(name, loop)
        self.player.startTransmit(self.getAudioMedia(-1))

    def start(self) -> None:
        self.app.counts["answered"] += 1
        self.seq = next(self.app.seq)
        if self.app.mode != "full":  # the whole call, from answer to hang-up
            rec = self.app.recorder(self.app.record_dir / f"{self.seq:07d}-whole.wav")
            self.getAudioMedia(-1).startTransmit(rec)
            self.recorders.append(rec)
        self.stage = "greeting"
        self.play(wl.GREETING)
        self.app.later(self.app.lengths[wl.GREETING], self.menu)

    def menu(self) -> None:
        if self.stage == "greeting" and not self.gone:
            self.stage = "menu"
            self.play(wl.MENU)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.app.counts["digits"] += 1
        if str(prm.digit) == wl.DIGIT:
            self.app.work.append(self.digit)

    def digit(self) -> None:
        if self.stage not in ("greeting", "menu") or self.gone:
            return
        self.stage = "after_digit"
        self.play(wl.AFTER_DIGIT)
        self.app.later(self.app.lengths[wl.AFTER_DIGIT], self.hold)
        if self.app.mode == "full":
            self.app.waiting.append(self)
            self.app.dispatch()

    def hold(self) -> None:
        """Hold music, replayed with a new player each time it ends, as hotline's queue does."""
        if self.stage in ("after_digit", "hold") and not self.gone:
            self.stage = "hold"
            self.play(wl.HOLD)
            self.app.later(self.app.lengths[wl.HOLD], self.hold)

    def ring(self, uri: str) -> None:
        assert self.app.acc is not None
        self.agent = Agent(self.app, self.app.acc, self, uri)
        self.agent.makeCall(uri, pj.CallOpParam(True))

    def bridge(self, agent: Agent) -> None:
        if self.gone:
            return
        self.stage = "talking"
        self.player = None
        mine, theirs = self.getAudioMedia(-1), agent.getAudioMedia(-1)
        mine.startTransmit(theirs)
        theirs.startTransmit(mine)
        made = [
            (mine, self.app.recorder(self.app.record_dir / f"{self.seq:07d}-caller.wav"), self),
            (theirs, self.app.recorder(self.app.record_dir / f"{self.seq:07d}-agent.wav"), agent),
        ]
        for media, rec, leg in made:  # both start on the same bridge tick
            media.startTransmit(rec)
            leg.recorders.append(rec)

    def ended(self) -> None:
        self.player = None
        if self.agent is not None and not self.agent.gone:
            self.agent.hangup(pj.CallOpParam(True))
        self.agent = None  # no reference cycle may keep a Call past libDestroy
        super().ended()


class Agent(Leg):
    def __init__(self, app: App, acc: pj.Account, caller: Caller, uri: str) -> None:
        super().__init__(app, acc)
        self.caller, self.uri = caller, uri

    def start(self) -> None:
        self.caller.bridge(self)

    def ended(self) -> None:
        if not self.caller.gone:  # the agent left first: the caller goes too
            self.caller.hangup(pj.CallOpParam(True))
        self.caller.agent = None
        super().ended()
        self.app.agent_free(self.uri)


class Account(pj.Account):  # type: ignore[misc]
    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Caller(self.app, self, prm.callId)
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rtp-port", type=int, default=40000)
    ap.add_argument("--record-dir", type=Path, required=True)
    ap.add_argument("--mode", choices=["ivr", "cps", "full"], default="ivr")
    ap.add_argument("--agents", default="", help="full mode: comma-separated agent SIP URIs")
    args = ap.parse_args()
    args.record_dir.mkdir(parents=True, exist_ok=True)
    app = App(args.mode, args.record_dir, [a for a in args.agents.split(",") if a])
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 1024
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port, tcfg.boundAddress = args.port, "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    ep.codecSetPriority("PCMU/8000", 255)
    ep.codecSetPriority("PCMA/8000", 254)
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:bare@127.0.0.1:{args.port}"
    acfg.mediaConfig.transportConfig.port = args.rtp_port
    acfg.mediaConfig.transportConfig.portRange = 2 * 1024 + 16
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = Account(app)
    acc.create(acfg, True)
    app.acc = acc
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("bare_pjsua2 ready", flush=True)
    while running:
        ep.libHandleEvents(0)
        app.run_due()
        time.sleep(PUMP)
    ep.hangupAllCalls()
    for _ in range(300):
        ep.libHandleEvents(10)
        app.run_due()
        if not app.legs:
            break
    for leg in list(app.legs):  # media first, then the calls
        app.finish(leg.recorders)
        if isinstance(leg, Caller):
            leg.player = None
    print("bare_pjsua2 " + json.dumps(app.counts), flush=True)
    for leg in app.legs:
        if isinstance(leg, Caller):
            leg.agent = None
    app.legs.clear()
    app.waiting.clear()
    app.timers.clear()
    app.work.clear()
    gc.collect()  # no Call may outlive libDestroy (its destructor asserts)
    acc.shutdown()
    ep.libDestroy()


if __name__ == "__main__":
    main()
