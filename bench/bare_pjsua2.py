"""The baseline for bench/sip_capacity.py: bare pjsua2 that answers, plays a prompt,
records the caller and counts DTMF, with the same endpoint settings as hotline
(8 kHz bridge, threadCnt 0, mainThreadOnly, pumped every 4 ms) and no IVR, ACD,
CTI or database.

    python bench/bare_pjsua2.py --port 5090 --prompt FILE.wav --record-dir DIR
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

import pjsua2 as pj


class Call(pj.Call):
    def __init__(self, app: App, acc: pj.Account, call_id: int) -> None:
        super().__init__(acc, call_id)
        self.app = app
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.media_started = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.app.ended.append(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        if self.media_started:
            return
        ci = self.getInfo()  # keep it alive: iterating a temporary's .media reads freed memory
        for m in ci.media:
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media_started = True
                media = self.getAudioMedia(-1)
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(str(self.app.prompt), pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(media)
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(str(self.app.record_dir / f"{id(self)}.wav"))
                media.startTransmit(self.recorder)
                return

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.app.digits += 1


class Account(pj.Account):
    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self.app, self, prm.callId)
        self.app.calls.add(call)
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)


class App:
    def __init__(self, prompt: Path, record_dir: Path) -> None:
        self.prompt, self.record_dir = prompt, record_dir
        self.calls: set[Call] = set()
        self.ended: list[Call] = []
        self.digits = 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rtp-port", type=int, default=40000)
    ap.add_argument("--prompt", type=Path, required=True)
    ap.add_argument("--record-dir", type=Path, required=True)
    args = ap.parse_args()
    args.record_dir.mkdir(parents=True, exist_ok=True)
    app = App(args.prompt, args.record_dir)
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
    acfg.mediaConfig.transportConfig.portRange = 4096
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = Account(app)
    acc.create(acfg, True)
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("bare_pjsua2 ready", flush=True)
    while running:
        ep.libHandleEvents(0)
        while app.ended:
            gone = app.ended.pop()
            gone.player = gone.recorder = None  # media first, then the call
            app.calls.discard(gone)
            del gone  # no Call may outlive libDestroy (its destructor asserts)
        time.sleep(0.004)
    print(f"bare_pjsua2 digits={app.digits}", flush=True)
    ep.hangupAllCalls()
    for _ in range(100):
        ep.libHandleEvents(10)
    for live in app.calls:
        live.player = live.recorder = None
    app.calls.clear()
    app.ended.clear()
    acc.shutdown()
    ep.libDestroy()


if __name__ == "__main__":
    main()
