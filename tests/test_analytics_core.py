"""The voice-of-the-customer cores (analytics/): prosody, keyword lists, QA flags, sentiment.

Pure: synthetic signals and plain data, no files, no recognizers.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.keywords import Hit, KeywordError, default_threshold, find_phrases, kws_lines, parse_phrases
from analytics.prosody import AgitationMeter, ProsodyConfig, agitation_curve, frame_pitches
from analytics.qa import (
    QaSettings,
    combine_sentiment,
    gap_offsets,
    missing_phrases,
    qa_flags,
    silences,
    speech_spans,
    trend,
)

RATE = 8000


def voice(seconds: float, *, f0: float = 140.0, dbfs: float = -26.0, syllables: float = 4.0) -> np.ndarray:
    """A voice-like signal: five harmonics of f0 (with a little vibrato), in syllable-sized
    bursts at ``syllables`` per second, 30 % of each syllable quiet."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    cycle = (t * syllables) % 1.0
    envelope = np.where(cycle < 0.7, np.sin(np.pi * cycle / 0.7), 0.0)
    x = x * envelope
    x = x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20) * 32767
    return x.astype(np.int16)


def test_pitch_is_found_within_a_few_percent() -> None:
    x = voice(1.0, f0=180.0, syllables=0.5)
    windows = np.stack([x[i : i + 320] for i in range(0, 4000 - 320, 160)])
    hz = frame_pitches(windows, 0.45)
    found = hz[~np.isnan(hz)]
    assert found.size > 10 and abs(float(np.median(found)) - 180.0) < 180.0 * 0.04


def test_louder_higher_faster_scores_high_and_the_usual_voice_low() -> None:
    calm = voice(10.0)
    agitated = voice(9.0, f0=140.0 * 2 ** (3 / 12), dbfs=-20.0, syllables=5.0)
    scores = agitation_curve(np.concatenate([calm, agitated, voice(9.0)]))
    by_part = {
        "after baseline": [s.score for s in scores if s.at <= 10.0],
        "agitated": [s.score for s in scores if s.start > 10.0 and s.at <= 19.0],
        "calm again": [s.score for s in scores if s.start >= 19.0],
    }
    assert by_part["agitated"] and min(by_part["agitated"]) >= 0.6, by_part
    assert by_part["calm again"] and max(by_part["calm again"]) < 0.4, by_part
    assert max(by_part["after baseline"], default=0.0) < 0.4, by_part


def test_no_score_before_the_baseline_or_on_silence() -> None:
    meter = AgitationMeter(ProsodyConfig(baseline_seconds=6.0))
    assert meter.feed(voice(4.0), 0.0) == []  # about 2.8 s voiced: no baseline yet
    assert meter.feed(np.zeros(RATE * 6, dtype=np.int16), 4.0) == []  # nothing voiced to score
    assert meter.baseline is None


def test_chunking_does_not_change_the_scores() -> None:
    x = np.concatenate([voice(8.0), voice(6.0, dbfs=-20.0)])
    whole = [round(s.score, 6) for s in AgitationMeter().feed(x, 0.0)]
    meter, parts = AgitationMeter(), []
    for i in range(0, x.size, 777):
        parts += [round(s.score, 6) for s in meter.feed(x[i : i + 777], i / RATE)]
    assert whole == parts and whole


def test_a_gap_starts_a_new_window_and_keeps_the_baseline() -> None:
    meter = AgitationMeter()
    before = meter.feed(voice(12.0), 0.0)
    base = meter.baseline
    after = meter.feed(voice(6.0), 40.0)  # 28 s later: a secure step in between
    assert base is not None and meter.baseline == base
    assert after and after[0].start == 40.0 and before[-1].at <= 12.0


# ------------------------------------------------------------------ keywords
def test_phrases_parse_with_default_and_own_thresholds() -> None:
    phrases = parse_phrases(
        {"complaint": ["Complaint", "file a  complaint /1e-35/"], "fraud": ["safe account"]}
    )
    assert [(p.text, p.category, p.threshold) for p in phrases] == [
        ("complaint", "complaint", default_threshold(1)),
        ("file a complaint", "complaint", 1e-35),
        ("safe account", "fraud", default_threshold(2)),
    ]
    assert kws_lines(phrases).splitlines() == [
        "complaint /1e-20/",
        "file a complaint /1e-35/",
        "safe account /1e-25/",
    ]


@pytest.mark.parametrize(
    "spec",
    [{"a": [""]}, {"a": ["x"], "b": ["x"]}, {"a": ["x /abc/"]}],
)
def test_bad_phrases_are_refused_with_a_reason(spec: dict) -> None:
    with pytest.raises(KeywordError):
        parse_phrases(spec)


def test_overlapping_hits_of_a_category_are_one_cue_the_longest() -> None:
    words = [("i", 0, 0.2, 1), ("want", 0.2, 0.5, 1), ("to", 0.5, 0.6, 1), ("file", 0.6, 0.9, 0.9),
             ("a", 0.9, 1.0, 0.8), ("complaint", 1.0, 1.6, 0.95), ("regulator", 2.0, 2.6, 0.7)]  # fmt: skip
    phrases = parse_phrases({"complaint": ["complaint", "file a complaint"], "regulator": ["regulator"]})
    assert find_phrases(words, phrases) == [
        Hit(phrase="file a complaint", category="complaint", confidence=0.8, start=0.6, end=1.6),
        Hit(phrase="regulator", category="regulator", confidence=0.7, start=2.0, end=2.6),
    ]


# ------------------------------------------------------------------------ QA
def levels(spans: list[tuple[float, float]], seconds: float) -> np.ndarray:
    out = np.full(int(seconds / 0.02), -70.0)
    for a, b in spans:
        out[int(a / 0.02) : int(b / 0.02)] = -25.0
    return out


def test_spans_join_short_pauses_and_drop_clicks() -> None:
    lv = levels([(1.0, 2.0), (2.2, 3.0), (5.0, 5.06), (6.0, 7.0)], 8.0)
    assert speech_spans(lv, QaSettings()) == [(1.0, 3.0), (6.0, 7.0)]


def test_flags_silence_overtalk_hold_keywords_missing_script_and_agitation() -> None:
    s = QaSettings(silence_seconds=9.0, overtalk_seconds=1.0)
    caller = [(1.0, 6.0), (20.0, 25.0)]
    agent = [(5.0, 7.0), (26.0, 40.0)]
    words = [
        ("i", 2.0, 2.1, 1.0),
        ("want", 2.1, 2.4, 1.0),
        ("a", 2.4, 2.5, 1.0),
        ("complaint", 2.5, 3.0, 0.9),
    ]
    flags = qa_flags(
        duration=50.0,
        caller_spans=caller,
        agent_spans=agent,
        caller_words=words,
        agent_words=[
            ("thank", 26.0, 26.2, 1.0),
            ("you", 26.2, 26.4, 1.0),
            ("for", 26.4, 26.5, 1.0),
            ("calling", 26.5, 27.0, 1.0),
        ],
        phrases=parse_phrases({"complaint": ["complaint"]}),
        script={"greeting": ["thank you for calling"], "closing": ["anything else"]},
        holds=[(42.0, 50.0)],
        gaps=[12.5],
        agitation=[(10.0, 0.2), (13.0, 0.7)],
        live_cues=[],
        settings=s,
    )
    assert flags["talk_seconds"] == {"caller": 10.0, "agent": 16.0}
    assert flags["silences"] == [{"start": 7.0, "end": 20.0, "seconds": 13.0}]  # the hold is not silence
    assert flags["overtalk"] == {"seconds": 1.0, "count": 1}
    assert flags["hold_seconds"] == 8.0
    assert [k["phrase"] for k in flags["keywords"]] == ["complaint"]
    assert flags["missing_phrases"] == ["closing"]
    assert flags["secure_gaps"] == [12.5]
    assert flags["agitation"]["peak"] == 0.7 and flags["agitation"]["agitated_windows"] == 1
    assert flags["flagged"] == ["agitation", "keyword", "missing_phrases", "overtalk", "silence"]


def test_dead_air_at_the_start_and_end_counts() -> None:
    assert silences([(12.0, 13.0)], 30.0, [], 8.0) == [(0.0, 12.0), (13.0, 30.0)]


def test_secure_gaps_are_placed_where_the_recording_joins() -> None:
    gaps = [
        {"from": "2026-12-01T10:00:05.000Z", "to": "2026-12-01T10:00:15.000Z", "reason": "secure_input"},
        {"from": "2026-12-01T10:00:20.000Z", "to": "2026-12-01T10:00:22.000Z", "reason": "cti"},
    ]
    assert gap_offsets("2026-12-01T10:00:00.000Z", gaps) == [5.0, 10.0]


def test_missing_phrases_need_the_words_in_order() -> None:
    script = {"greeting": ["thank you for calling"], "code": ["service code"]}
    assert missing_phrases("calling for you thank", script) == ["greeting", "code"]
    assert missing_phrases("Thank you  for calling, your service code is", script) == []
    assert missing_phrases("thank you for calling", script) == ["code"]


def test_sentiment_agitation_only_pulls_down_and_labels_at_five_hundredths() -> None:
    assert combine_sentiment(0.5, 0.1) == {"score": 0.5, "label": "positive", "text": 0.5, "agitation": 0.1}
    assert combine_sentiment(0.0, 1.0)["score"] == -0.3
    assert combine_sentiment(None, None)["label"] == "neutral"
    assert [trend([]), trend([0.1]), trend([-0.5, 0.2, 0.0]), trend([0.5, 0.0]), trend([0.0, 0.05])] == [
        "", "", "worse", "better", "steady",
    ]  # fmt: skip


@given(
    text=st.one_of(st.none(), st.floats(-1, 1)),
    agitation=st.one_of(st.none(), st.floats(0, 1)),
)
def test_sentiment_stays_in_range_and_never_above_the_words(
    text: float | None, agitation: float | None
) -> None:
    out = combine_sentiment(text, agitation)
    assert -1.0 <= out["score"] <= 1.0
    assert out["score"] <= round(text if text is not None else 0.0, 3) + 1e-9
