"""Service codes: format, check symbol, per-day uniqueness, speech. Pure; no I/O."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calls import servicecode as sc

DAY = 19_800 * 86_400  # a UTC midnight, epoch seconds

values = st.integers(min_value=0, max_value=sc.SPACE - 1)


def test_alphabet_has_no_look_alikes_and_is_prime_sized() -> None:
    assert not set("01OILUV") & set(sc.ALPHABET)
    assert len(set(sc.ALPHABET)) == sc.BASE == 29
    assert all(sc.BASE % d for d in range(2, sc.BASE))
    assert set(sc.NATO) | set(sc.DIGITS) == set(sc.ALPHABET)


@given(values)
def test_parse_format_round_trip(value: int) -> None:
    code = sc.encode(value)
    assert re.fullmatch(f"[{sc.ALPHABET}]{{3}}-[{sc.ALPHABET}]{{3}}", code)
    assert sc.parse(code) == value
    assert sc.parse(code.lower().replace("-", " ")) == value


@given(values, st.integers(0, sc.LENGTH - 1), st.integers(1, sc.BASE - 1))
def test_a_single_wrong_symbol_is_detected(value: int, pos: int, shift: int) -> None:
    symbols = list(sc.encode(value).replace("-", ""))
    symbols[pos] = sc.ALPHABET[(sc.ALPHABET.index(symbols[pos]) + shift) % sc.BASE]
    with pytest.raises(sc.ServiceCodeError) as err:
        sc.parse("".join(symbols))
    assert err.value.code == "servicecode.check"


@given(values, st.integers(0, sc.LENGTH - 2))
def test_a_swap_of_neighbours_is_detected(value: int, pos: int) -> None:
    symbols = list(sc.encode(value).replace("-", ""))
    if symbols[pos] == symbols[pos + 1]:
        return
    symbols[pos], symbols[pos + 1] = symbols[pos + 1], symbols[pos]
    with pytest.raises(sc.ServiceCodeError):
        sc.parse("".join(symbols))


@pytest.mark.parametrize(
    ("text", "code"),
    [("K7M-4Q", "servicecode.length"), ("K7M-4Q0", "servicecode.symbol"), ("", "servicecode.length")],
)
def test_bad_codes_say_what_is_wrong(text: str, code: str) -> None:
    with pytest.raises(sc.ServiceCodeError) as err:
        sc.parse(text)
    assert err.value.code == code
    if code == "servicecode.symbol":
        assert "'0'" in str(err.value) and "O" in str(err.value)


def test_codes_are_unique_within_a_day_even_in_bursts() -> None:
    codes = sc.ServiceCodes(secret=b"node-1")
    issued = [codes.issue(DAY + 9 * 3600 + i / 500) for i in range(5_000)]  # 500 calls a second
    issued += [codes.issue(DAY + 9 * 3600) for _ in range(1_000)]  # the clock stepped back
    assert len(set(issued)) == len(issued)
    assert all(sc.parse(c) >= 0 for c in issued)


def test_consecutive_codes_look_unrelated_and_days_differ() -> None:
    codes = sc.ServiceCodes()
    first, second = codes.issue(DAY + 10.0), codes.issue(DAY + 10.1)
    assert first[:3] != second[:3] or first[4:] != second[4:]
    tomorrow = sc.ServiceCodes().issue(DAY + 86_400 + 10.0)
    assert tomorrow != first


def test_nodes_use_disjoint_slots() -> None:
    a = sc.ServiceCodes(node_index=0, nodes=2)
    b = sc.ServiceCodes(node_index=1, nodes=2)
    from_a = {a.issue(DAY + i / 200) for i in range(3_000)}
    from_b = {b.issue(DAY + i / 200) for i in range(3_000)}
    assert len(from_a) == len(from_b) == 3_000
    assert not from_a & from_b


def test_the_permutation_is_a_bijection_on_a_sample() -> None:
    keys = sc._round_keys(b"k", 1)
    sample = range(0, sc.SPACE, 997)
    images = {sc.permute(x, keys) for x in sample}
    assert len(images) == len(sample)
    assert all(0 <= y < sc.SPACE for y in images)


def test_speakable_spells_letters_with_nato_and_pauses_between_groups() -> None:
    code = next(sc.encode(v) for v in range(sc.SPACE) if sc.encode(v).startswith("2"))
    text = sc.speakable(code.lower())
    parts = text.split(". ")
    assert len(parts) == 2
    assert parts[0].startswith("two, ")
    for c in code.replace("-", ""):
        assert (sc.DIGITS[c] if c in sc.DIGITS else f"{c} as in {sc.NATO[c]}") in text


def test_speakable_example() -> None:
    value = sc.parse("K7M" + "4Q" + sc.check_symbol("K7M4Q"))
    assert sc.speakable(sc.encode(value)).startswith(
        "K as in kilo, seven, M as in mike. four, Q as in quebec, "
    )


def test_a_flow_can_say_the_code() -> None:
    import ivr

    flow, diagnostics = ivr.compile_flow(
        "flow: t\nstart: say\nnodes:\n"
        '  say: {type: play, prompt: {text: "Your service code is {call.service_code_spoken}"}, next: bye}\n'
        "  bye: {type: hangup}\n",
        "t.yaml",
    )
    assert flow is not None, diagnostics
    code = sc.ServiceCodes().issue(DAY)
    call = {"id": "c1", "service_code": code, "service_code_spoken": sc.speakable(code)}
    out = ivr.build_interpreter(flow, "c1", "5550100", variables={"call": call}).start(0.0)
    play = next(o for o in out if isinstance(o, ivr.PlayPrompt))
    assert play.prompt.text == f"Your service code is {sc.speakable(code)}"
