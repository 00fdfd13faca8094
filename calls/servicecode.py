"""Service codes: a short, speakable reference for every call, e.g. ``K7M-4QX``.

Pure: no I/O, no clock. The caller of :meth:`ServiceCodes.issue` passes the
wall-clock time.

Format
    Six symbols from a 29-symbol alphabet, grouped 3-3 for speech: five data
    symbols and one check symbol. The alphabet leaves out the look-alikes
    0/O, 1/I/L and U/V (``ALPHABET``).

Check symbol
    The weighted sum ``sum((i + 1) * value[i] for i in 0..5)`` is 0 mod 29.
    29 is prime and the weights 1-6 are distinct and non-zero mod 29, so any
    single wrong symbol and any swap of two different symbols is detected.

Uniqueness
    Codes are not random. Within a UTC day, call ``n`` gets a *slot*
    ``max(second_of_day * PER_SECOND, previous_slot + 1)``, and the slot goes
    through a keyed bijection of the 29**5 = 20,511,149 data values (a
    Feistel network with cycle walking, re-keyed every day). Distinct slots
    give distinct codes, so within one process and day there are **no**
    collisions at all, up to ``PER_SECOND`` = 237 calls started per second on
    average (bursts borrow later slots). Across a restart the slots restart
    from the current second, so a collision needs the previous process to
    have borrowed slots past the restart second (a burst of >237 calls/s just
    before the restart) or the clock stepped back across the restart.
    Several servers sharing a day get disjoint slot ranges through
    ``node_index`` / ``nodes``. The day key only scrambles the order (codes
    of adjacent calls look unrelated); a code is a reference, not a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"  # 29 symbols: no 0 O 1 I L U V
BASE = len(ALPHABET)
DATA_SYMBOLS = 5
LENGTH = DATA_SYMBOLS + 1  # with the check symbol
SPACE = BASE**DATA_SYMBOLS  # distinct codes per day: 20,511,149
SECONDS_PER_DAY = 86_400
PER_SECOND = SPACE // SECONDS_PER_DAY  # slots per second of the day: 237

_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_WEIGHT_INV = pow(LENGTH, -1, BASE)  # inverse of the check symbol's weight mod 29

NATO = {
    "A": "alfa",
    "B": "bravo",
    "C": "charlie",
    "D": "delta",
    "E": "echo",
    "F": "foxtrot",
    "G": "golf",
    "H": "hotel",
    "J": "juliett",
    "K": "kilo",
    "M": "mike",
    "N": "november",
    "P": "papa",
    "Q": "quebec",
    "R": "romeo",
    "S": "sierra",
    "T": "tango",
    "W": "whiskey",
    "X": "x-ray",
    "Y": "yankee",
    "Z": "zulu",
}
DIGITS = {
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
}


class ServiceCodeError(ValueError):
    """A service code (typed by a person or sent by an integrator) is not valid."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code  # stable: servicecode.length, servicecode.symbol, servicecode.check
        super().__init__(message)


class ServiceCodeExhausted(RuntimeError):
    """More codes were asked for in one UTC day than the code space holds (misuse)."""

    code = "servicecode.exhausted"


def check_symbol(data: str) -> str:
    """The check symbol for five data symbols."""
    total = sum((i + 1) * _VALUE[c] for i, c in enumerate(data))
    return ALPHABET[(-total * _WEIGHT_INV) % BASE]


def encode(value: int) -> str:
    """The grouped code ("K7M-4QX") for a data value in ``range(SPACE)``."""
    if not 0 <= value < SPACE:
        raise ValueError(f"service code value {value} is outside 0..{SPACE - 1}")
    symbols = []
    for _ in range(DATA_SYMBOLS):
        value, digit = divmod(value, BASE)
        symbols.append(ALPHABET[digit])
    data = "".join(reversed(symbols))
    return format_code(data + check_symbol(data))


def format_code(symbols: str) -> str:
    """Six symbols grouped for reading aloud: ``K7M4QX`` -> ``K7M-4QX``."""
    return f"{symbols[:3]}-{symbols[3:]}"


def parse(text: str) -> int:
    """The data value of a code as a person may type it: any case, with or without
    the dash or spaces. Raises :class:`ServiceCodeError` naming what is wrong."""
    symbols = "".join(text.split()).replace("-", "").upper()
    if len(symbols) != LENGTH:
        raise ServiceCodeError(
            "servicecode.length",
            f"a service code has {LENGTH} characters like K7M-4QX; '{text}' has {len(symbols)}",
        )
    for pos, c in enumerate(symbols, start=1):
        if c not in _VALUE:
            hint = {"0": "O", "O": "0", "1": "I", "I": "1", "L": "1", "U": "V", "V": "U"}.get(c)
            extra = f" (codes use neither {c} nor {hint})" if hint else ""
            raise ServiceCodeError(
                "servicecode.symbol", f"character {pos} of '{text}', '{c}', is not used in codes{extra}"
            )
    if check_symbol(symbols[:DATA_SYMBOLS]) != symbols[DATA_SYMBOLS]:
        raise ServiceCodeError(
            "servicecode.check", f"'{text}' fails its check character; a character is wrong or swapped"
        )
    value = 0
    for c in symbols[:DATA_SYMBOLS]:
        value = value * BASE + _VALUE[c]
    return value


def normalize(text: str) -> str:
    """The canonical grouped form of a typed code (validates it)."""
    return encode(parse(text))


def speakable(code: str) -> str:
    """Text for the TTS: "K as in kilo, seven, M as in mike. four, Q as in quebec, X as in x-ray".

    The group break is a full stop, so the synthesizer pauses there.
    """
    symbols = normalize(code).replace("-", "")

    def say(c: str) -> str:
        return DIGITS[c] if c in DIGITS else f"{c} as in {NATO[c]}"

    groups = (symbols[:3], symbols[3:])
    return ". ".join(", ".join(say(c) for c in group) for group in groups)


# ---------------------------------------------------------------- permutation
_DOMAIN_BITS = 26  # a balanced Feistel domain of 2**26 >= SPACE (cycle walking skips the rest)
_HALF = _DOMAIN_BITS // 2
_MASK = (1 << _HALF) - 1
_ROUNDS = 4


def _round_keys(secret: bytes, day: int) -> list[bytes]:
    day_key = hmac.new(secret, f"day:{day}".encode(), hashlib.sha256).digest()
    return [hmac.new(day_key, bytes([r]), hashlib.sha256).digest()[:8] for r in range(_ROUNDS)]


def _feistel(x: int, keys: list[bytes]) -> int:
    left, right = x >> _HALF, x & _MASK
    for key in keys:
        f = int.from_bytes(hashlib.blake2b(right.to_bytes(4, "big"), key=key, digest_size=4).digest(), "big")
        left, right = right, left ^ (f & _MASK)
    return (left << _HALF) | right


def permute(slot: int, keys: list[bytes]) -> int:
    """A bijection of ``range(SPACE)``: Feistel on 26 bits, re-applied until inside."""
    x = _feistel(slot, keys)
    while x >= SPACE:  # cycle walking; about 3.3 rounds on average
        x = _feistel(x, keys)
    return x


@dataclass(slots=True)
class ServiceCodes:
    """Issues the day's service codes. One instance per server process.

    ``secret`` keys the daily shuffle (any stable bytes, e.g. the node name;
    it must not change during a day or restarts could repeat a code).
    """

    secret: bytes = b"hotline"
    node_index: int = 0  # this server's index among `nodes` sharing the code space
    nodes: int = 1  # servers issuing codes for the same calls/records
    _day: int = field(default=-1, init=False)  # UTC day number of the last code
    _slot: int = field(default=-1, init=False)  # last slot used that day
    _keys: list[bytes] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not (self.nodes >= 1 and 0 <= self.node_index < self.nodes and PER_SECOND // self.nodes >= 1):
            raise ValueError(f"node_index {self.node_index} / nodes {self.nodes} is not a valid split")

    def issue(self, now_wall: float) -> str:
        """A new code for a call starting at ``now_wall`` (epoch seconds)."""
        day, second = divmod(int(now_wall), SECONDS_PER_DAY)
        per_node = PER_SECOND // self.nodes
        if day != self._day:
            self._day, self._slot, self._keys = day, -1, _round_keys(self.secret, day)
        slot = max(second * per_node, self._slot + 1)
        if slot >= SECONDS_PER_DAY * per_node:
            raise ServiceCodeExhausted(f"all {SECONDS_PER_DAY * per_node} service codes of the day are used")
        self._slot = slot
        node_slot = (slot // per_node) * PER_SECOND + self.node_index * per_node + slot % per_node
        return encode(permute(node_slot, self._keys))
