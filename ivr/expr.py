"""A small, safe expression language for flows: parsed by hand, evaluated over plain data.

Grammar (lowest precedence first)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := primary (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") primary)?
    primary := NUMBER | STRING | true | false | null | path | "(" expr ")"
             | "[" (expr ("," expr)*)? "]" | "-" NUMBER
    path    := NAME ("." NAME)*

There is no ``eval`` and no attribute access: a path walks mappings only, so a
flow can read ``caller.tier`` from ``{"caller": {"tier": "gold"}}`` and nothing
else. Evaluation is total: a missing variable is ``null``, comparing a number
with a word is false, and no input makes :func:`evaluate` raise.

Prompt texts interpolate expressions in braces: ``"you are number {queue.position}"``;
``{{`` and ``}}`` are literal braces.

Limits (so that no text, however hostile, can exhaust the compiler's stack or make
an integer too large to convert): brackets, parentheses and ``not`` nest at most
:data:`MAX_NESTING` deep, an expression tree (long ``and``/``or`` chains included) is
at most :data:`MAX_DEPTH` deep, and a number has at most :data:`MAX_NUMBER_DIGITS`
digits. Beyond them, :class:`ExprError` names the limit and the column.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import IvrError

KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")

MAX_NESTING = 32  # brackets, parentheses and `not`s inside one another
MAX_DEPTH = 200  # levels of the whole expression tree (a chain of 199 `or`s is 200 deep)
MAX_NUMBER_DIGITS = 30  # digits in a number literal (both parts of a decimal together)


class ExprError(IvrError):
    """An expression in a flow does not parse. ``col`` is 1-based within the expression text."""

    code = "flow.bad_expression"

    def __init__(self, message: str, col: int) -> None:
        self.message = message
        self.col = col
        super().__init__(f"column {col}: {message}")


# ------------------------------------------------------------------------ AST
@dataclass(frozen=True, slots=True)
class Literal:
    value: str | float | int | bool | None
    col: int


@dataclass(frozen=True, slots=True)
class Var:
    path: tuple[str, ...]  # ("caller", "tier")
    col: int


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    col: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    col: int


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # "and", "or", "==", "!=", "<", "<=", ">", ">=", "in", "not in"
    left: Expr
    right: Expr
    col: int


Expr = Literal | Var | ListExpr | Not | BinOp


# ------------------------------------------------------------------ tokenizer
@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num", "str", "name", "op", "end"
    text: str
    col: int  # 1-based
    value: Any = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        col = i + 1
        if c in " \t\r\n":
            i += 1
            continue
        if c in "\"'":
            j, buf = i + 1, []
            while j < len(text) and text[j] != c:
                if text[j] == "\\" and j + 1 < len(text):
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= len(text):
                raise ExprError("a text has no closing quote", col)
            tokens.append(_Token("str", text[i : j + 1], col, "".join(buf)))
            i = j + 1
            continue
        m = _NUMBER.match(text, i)
        if m:
            raw = m.group()
            if len(raw) - raw.count(".") > MAX_NUMBER_DIGITS:
                raise ExprError(f"a number has more than {MAX_NUMBER_DIGITS} digits", col)
            tokens.append(_Token("num", raw, col, float(raw) if "." in raw else int(raw)))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(_Token("name", m.group(), col))
            i = m.end()
            continue
        two = text[i : i + 2]
        if two in ("==", "!=", "<=", ">="):
            tokens.append(_Token("op", two, col))
            i += 2
            continue
        if c in "<>()[],.-":
            tokens.append(_Token("op", c, col))
            i += 1
            continue
        if c == "=":
            raise ExprError("'=' is not a comparison; write '=='", col)
        raise ExprError(f"unexpected character '{c}'", col)
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


# --------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.nesting = 0  # brackets, parentheses and `not`s open around the current token

    def enter(self, tok: _Token) -> None:
        """One level deeper; past MAX_NESTING the expression is refused (before the
        recursion could reach Python's own limit)."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExprError(
                f"nested more than {MAX_NESTING} levels deep (brackets, parentheses and 'not'); "
                "split the condition, e.g. into a `set` node",
                tok.col,
            )

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text == word

    def expect(self, op: str) -> None:
        tok = self.take()
        if not (tok.kind == "op" and tok.text == op):
            found = tok.text or "the end"
            raise ExprError(f"expected '{op}', found {found!r}", tok.col)

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise ExprError("the expression is empty", 1)
        expr = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ExprError(f"unexpected {tok.text!r}; join conditions with 'and' or 'or'", tok.col)
        _check_depth(expr)
        return expr

    def or_(self) -> Expr:
        left = self.and_()
        while self.is_word("or"):
            col = self.take().col
            left = BinOp("or", left, self.and_(), col)
        return left

    def and_(self) -> Expr:
        left = self.not_()
        while self.is_word("and"):
            col = self.take().col
            left = BinOp("and", left, self.not_(), col)
        return left

    def not_(self) -> Expr:
        if self.is_word("not"):
            tok = self.take()
            self.enter(tok)
            operand = self.not_()
            self.nesting -= 1
            return Not(operand, tok.col)
        return self.compare()

    def compare(self) -> Expr:
        left = self.primary()
        tok = self.peek()
        if tok.kind == "op" and tok.text in _COMPARE:
            self.take()
            return BinOp(tok.text, left, self.primary(), tok.col)
        if self.is_word("in"):
            self.take()
            return BinOp("in", left, self.primary(), tok.col)
        if self.is_word("not"):
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "name" and nxt.text == "in":
                self.take()
                self.take()
                return BinOp("not in", left, self.primary(), tok.col)
        return left

    def primary(self) -> Expr:
        tok = self.take()
        if tok.kind in ("num", "str"):
            return Literal(tok.value, tok.col)
        if tok.kind == "op" and tok.text == "-":
            num = self.take()
            if num.kind != "num":
                raise ExprError("'-' must be followed by a number", tok.col)
            return Literal(-num.value, tok.col)
        if tok.kind == "op" and tok.text == "(":
            self.enter(tok)
            inner = self.or_()
            self.expect(")")
            self.nesting -= 1
            return inner
        if tok.kind == "op" and tok.text == "[":
            self.enter(tok)
            items: list[Expr] = []
            if not (self.peek().kind == "op" and self.peek().text == "]"):
                items.append(self.or_())
                while self.peek().kind == "op" and self.peek().text == ",":
                    self.take()
                    items.append(self.or_())
            self.expect("]")
            self.nesting -= 1
            return ListExpr(tuple(items), tok.col)
        if tok.kind == "name":
            if tok.text == "true":
                return Literal(True, tok.col)
            if tok.text == "false":
                return Literal(False, tok.col)
            if tok.text == "null":
                return Literal(None, tok.col)
            if tok.text in KEYWORDS:
                raise ExprError(f"'{tok.text}' needs a value before it", tok.col)
            path = [tok.text]
            while self.peek().kind == "op" and self.peek().text == ".":
                self.take()
                part = self.take()
                if part.kind != "name" or part.text in KEYWORDS:
                    raise ExprError("a '.' must be followed by a field name", part.col)
                path.append(part.text)
            return Var(tuple(path), tok.col)
        if tok.kind == "end":
            raise ExprError("the expression ends too early", tok.col)
        raise ExprError(f"unexpected {tok.text!r}", tok.col)


def _children(expr: Expr) -> tuple[Expr, ...]:
    match expr:
        case ListExpr(items=items):
            return items
        case Not(operand=operand):
            return (operand,)
        case BinOp(left=left, right=right):
            return (left, right)
    return ()


def _check_depth(root: Expr) -> None:
    """Refuse a tree deeper than MAX_DEPTH (walked with a stack, not by recursion), so that
    :func:`variables` and :func:`evaluate`, which recurse, always stay within Python's limit."""
    stack = [(root, 1)]
    while stack:
        expr, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExprError(
                f"the expression is more than {MAX_DEPTH} levels deep (e.g. a long chain of "
                "'and'/'or'); use `in [...]` for lists of values or split it into `set` nodes",
                expr.col,
            )
        stack.extend((child, depth + 1) for child in _children(expr))


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """Parse one expression; raises :class:`ExprError` with a column."""
    return _Parser(text).parse()


def variables(expr: Expr) -> list[Var]:
    """Every variable path the expression reads, in source order."""
    match expr:
        case Var():
            return [expr]
        case Literal():
            return []
        case ListExpr(items=items):
            return [v for item in items for v in variables(item)]
        case Not(operand=operand):
            return variables(operand)
        case BinOp(left=left, right=right):
            return variables(left) + variables(right)


# ----------------------------------------------------------------- evaluation
def lookup_path(data: Any, path: Sequence[str]) -> Any:
    """Walk mappings only (never attributes); anything missing is ``None``."""
    for part in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) or isinstance(b, int | float):
        na, nb = _number(a), _number(b)  # collected digits are text: "42" == 42
        return na is not None and na == nb
    if isinstance(a, str | type(None)) and isinstance(b, str | type(None)):
        return a == b
    try:
        return bool(a == b)
    except Exception:
        return False


def _order(op: str, a: Any, b: Any) -> bool:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        x: Any = na
        y: Any = nb
    elif isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    else:
        return False
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple | set | frozenset):
        return any(_equal(item, c) for c in container)
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    return False


def truthy(value: Any) -> bool:
    if isinstance(value, str | list | tuple | dict | int | float | bool) or value is None:
        return bool(value)
    return True


def evaluate(expr: Expr, env: Mapping[str, Any]) -> Any:
    """The value of ``expr`` over ``env``. Never raises."""
    match expr:
        case Literal(value=value):
            return value
        case Var(path=path):
            return lookup_path(env, path)
        case ListExpr(items=items):
            return [evaluate(i, env) for i in items]
        case Not(operand=operand):
            return not truthy(evaluate(operand, env))
        case BinOp(op="and", left=left, right=right):
            return truthy(evaluate(left, env)) and truthy(evaluate(right, env))
        case BinOp(op="or", left=left, right=right):
            return truthy(evaluate(left, env)) or truthy(evaluate(right, env))
        case BinOp(op=op, left=left, right=right):
            a, b = evaluate(left, env), evaluate(right, env)
            if op == "==":
                return _equal(a, b)
            if op == "!=":
                return not _equal(a, b)
            if op == "in":
                return _contains(b, a)
            if op == "not in":
                return not _contains(b, a)
            return _order(op, a, b)
    return None  # pragma: no cover - every Expr kind is matched above


# ------------------------------------------------------------- interpolation
@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> tuple[str | tuple[Expr, int], ...]:
    """Split ``"number {queue.position}"`` into text and (expression, column) parts.

    Raises :class:`ExprError` whose column is within ``text``.
    """
    parts: list[str | tuple[Expr, int]] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "{" and text[i + 1 : i + 2] == "{":
            buf.append("{")
            i += 2
        elif c == "}" and text[i + 1 : i + 2] == "}":
            buf.append("}")
            i += 2
        elif c == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise ExprError("'{' has no closing '}' (write '{{' for a brace)", i + 1)
            if buf:
                parts.append("".join(buf))
                buf = []
            inner = text[i + 1 : end]
            try:
                parts.append((parse(inner), i + 2))
            except ExprError as exc:
                raise ExprError(exc.message, i + 1 + exc.col) from None
            i = end + 1
        elif c == "}":
            raise ExprError("'}' without '{' (write '}}' for a brace)", i + 1)
        else:
            buf.append(c)
            i += 1
    if buf:
        parts.append("".join(buf))
    return tuple(parts)


def show(value: Any) -> str:
    """How a value is spoken in a prompt: 3.0 is "3", null is ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    return ""  # lists, mappings and foreign objects are never spoken


def render(text: str, env: Mapping[str, Any]) -> str:
    """Interpolate ``{...}`` in ``text``. A text that does not parse is returned as written."""
    try:
        parts = parse_template(text)
    except ExprError:
        return text
    return "".join(p if isinstance(p, str) else show(evaluate(p[0], env)) for p in parts)
