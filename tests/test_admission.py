"""Per-source admission of incoming calls (telephony/admission.py): the pure core, fake clock.
The flood over real SIP is in test_e2e_faults.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.admission import Admission, AdmissionLimits, source_of

from .helpers import FakeClock

LIMITS = AdmissionLimits(calls=30, unconfirmed=5, rate=10.0, burst=50, handshake_timeout=4.0)


def test_a_source_that_never_acks_holds_at_most_its_unconfirmed_quota() -> None:
    clock = FakeClock(100.0)
    a = Admission(LIMITS)
    for n in range(5):
        assert a.offer(f"f{n}", "10.0.0.9", clock.now) is None
        a.answered(f"f{n}", clock.now)
    first = a.offer("f5", "10.0.0.9", clock.now)
    assert first is not None and (first.code, first.limit, first.first) == (486, "unconfirmed", True)
    again = a.offer("f6", "10.0.0.9", clock.now)
    assert again is not None and not again.first  # one log line per source, not per INVITE
    assert a.offer("legit", "10.0.0.2", clock.now) is None  # other sources are not affected
    assert a.take_refusals() == {"10.0.0.9": 2}
    # the ACKs never come: after handshake_timeout the five are given up and the quota is free
    clock.advance(3.9)
    assert a.expired(clock.now) == []
    clock.advance(0.2)
    assert sorted(a.expired(clock.now)) == [f"f{n}" for n in range(5)]
    assert a.load("10.0.0.9") == (0, 0)
    assert a.offer("f7", "10.0.0.9", clock.now) is None


def test_a_confirmed_call_frees_its_unconfirmed_slot_and_never_expires() -> None:
    clock = FakeClock()
    a = Admission(LIMITS)
    assert a.offer("c1", "s", clock.now) is None
    a.answered("c1", clock.now)
    a.confirmed("c1")
    assert a.load("s") == (1, 0) and a.next_deadline() is None
    clock.advance(100)
    assert a.expired(clock.now) == []
    a.ended("c1")
    assert a.load("s") == (0, 0)


def test_calls_up_at_once_are_capped_per_source() -> None:
    clock = FakeClock()
    a = Admission(AdmissionLimits(calls=3, unconfirmed=10, rate=100, burst=100, handshake_timeout=4))
    for n in range(3):
        assert a.offer(f"c{n}", "s", clock.now) is None
        a.confirmed(f"c{n}")
    refused = a.offer("c3", "s", clock.now)
    assert refused is not None and refused.limit == "calls"
    a.ended("c0")
    assert a.offer("c3", "s", clock.now) is None


def test_the_invite_rate_is_a_token_bucket() -> None:
    clock = FakeClock()
    a = Admission(AdmissionLimits(calls=1000, unconfirmed=1000, rate=2.0, burst=4, handshake_timeout=4))
    admitted = [a.offer(f"c{n}", "s", clock.now) is None for n in range(6)]
    assert admitted == [True] * 4 + [False] * 2
    refused = a.offer("x", "s", clock.now)
    assert refused is not None and refused.limit == "rate"
    clock.advance(1.0)  # two more tokens
    assert [a.offer(f"d{n}", "s", clock.now) is None for n in range(3)] == [True, True, False]


def test_the_source_behind_a_trusted_proxy_comes_from_x_hotline_source() -> None:
    invite = "INVITE sip:h@10.0.0.1 SIP/2.0\r\nVia: x\r\nX-Hotline-Source: 203.0.113.7:5062\r\n\r\nbody"
    trusted = {"10.0.0.5"}
    assert source_of("10.0.0.5:5060", invite, trusted) == ("203.0.113.7", None)
    assert source_of("10.0.0.8:5060", invite, trusted) == ("10.0.0.8", None)  # not a proxy: ignored
    v6 = invite.replace("203.0.113.7:5062", "[2001:db8::7]:5062").replace(
        "X-Hotline-Source", "x-hotline-source"
    )
    assert source_of("10.0.0.5:5060", v6, trusted) == ("2001:db8::7", None)
    missing, why = source_of("10.0.0.5:5060", "INVITE x SIP/2.0\r\n\r\n", trusted)
    assert missing == "10.0.0.5" and why == "no X-Hotline-Source header"
    bad, why = source_of("10.0.0.5:5060", invite.replace("203.0.113.7:5062", "evil"), trusted)
    assert bad == "10.0.0.5" and why is not None and "not ip:port" in why
    in_body = "INVITE x SIP/2.0\r\nVia: x\r\n\r\nX-Hotline-Source: 1.2.3.4:5\r\n"
    assert source_of("10.0.0.5:5060", in_body, trusted)[0] == "10.0.0.5"  # only headers count


def test_spoofed_sources_cannot_grow_the_table_without_bound() -> None:
    a = Admission(LIMITS)
    for n in range(20_000):
        leg = f"l{n}"
        assert a.offer(leg, f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", float(n)) is None
        a.ended(leg)
    assert len(a._sources) <= 4097


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["offer", "answer", "ack", "end", "tick"]),
            st.integers(0, 15),
            st.sampled_from(["a", "b"]),
        ),
        max_size=120,
    )
)
def test_no_source_ever_exceeds_its_limits(steps: list[tuple[str, int, str]]) -> None:
    clock = FakeClock()
    limits = AdmissionLimits(calls=6, unconfirmed=3, rate=5.0, burst=8, handshake_timeout=2.0)
    a = Admission(limits)
    owner: dict[str, str] = {}
    for op, n, source in steps:
        leg = f"{source}{n}"
        if op == "offer" and leg not in owner and a.offer(leg, source, clock.now) is None:
            owner[leg] = source
        elif op == "answer" and leg in owner:
            a.answered(leg, clock.now)
        elif op == "ack" and leg in owner:
            a.confirmed(leg)
        elif op == "end" and leg in owner:
            a.ended(leg)
            del owner[leg]
        elif op == "tick":
            clock.advance(0.7)
            for gone in a.expired(clock.now):
                del owner[gone]
        for s in ("a", "b"):
            calls, unconfirmed = a.load(s)
            assert calls <= limits.calls and unconfirmed <= limits.unconfirmed
            assert calls == sum(1 for src in owner.values() if src == s)
