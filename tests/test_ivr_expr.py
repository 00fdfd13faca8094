"""The safe expression language: parsing with columns, total evaluation, interpolation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr import expr as ex

ENV = {
    "caller": {"number": "5551234", "tier": "gold", "tags": ["vip", "elderly"]},
    "queue": {"position": 3, "ewt": 240},
    "digits": "42",
    "flag": True,
}


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("caller.tier == 'gold'", True),
        ('caller.tier != "gold"', False),
        ("queue.position > 2 and queue.ewt <= 240", True),
        ("queue.position < 2 or not flag", False),
        ("not (queue.position >= 3)", False),
        ("'vip' in caller.tags", True),
        ("'x' not in caller.tags", True),
        ("'55' in caller.number", True),
        ("caller.tier in ['gold', 'platinum']", True),
        ("digits == 42", True),  # collected digits are text; numbers compare by value
        ("digits > 40", True),
        ("missing.path == null", True),
        ("missing < 3", False),  # null never orders
        ("caller.tier > 3", False),  # a word and a number never order
        ("-1 < 0", True),
        ("true and false", False),
        ("1.5 >= 1.5", True),
        ("caller.number.deeper", None),  # a path never walks into a string
        ("[1, 2]", [1, 2]),
    ],
)
def test_evaluate(source: str, value: object) -> None:
    assert ex.evaluate(ex.parse(source), ENV) == value


@pytest.mark.parametrize(
    ("source", "col"),
    [
        ("caller.tier = 'gold'", 13),
        ("a and", 6),
        ("(a == 1", 8),
        ("'open", 1),
        ("a $ b", 3),
        ("a b", 3),
        ("", 1),
        ("a.", 3),
        ("x == and", 6),
        ("- a", 1),
    ],
)
def test_parse_errors_carry_the_column(source: str, col: int) -> None:
    with pytest.raises(ex.ExprError) as err:
        ex.parse(source)
    assert err.value.col == col, err.value.message


def test_no_attribute_access_into_python_objects() -> None:
    class Secret:
        password = "hunter2"

    env = {"obj": Secret(), "d": {"__class__": "x"}}
    assert ex.evaluate(ex.parse("obj.password"), env) is None
    assert ex.evaluate(ex.parse("obj.__class__"), env) is None
    assert ex.evaluate(ex.parse("d.__class__"), env) == "x"  # only mapping keys


def test_variables_lists_paths_in_order() -> None:
    found = ex.variables(ex.parse("a.b == 1 and not c in [d, 'e']"))
    assert [(v.path, v.col) for v in found] == [(("a", "b"), 1), (("c",), 18), (("d",), 24)]


def test_interpolation() -> None:
    assert ex.render("you are number {queue.position}", ENV) == "you are number 3"
    assert ex.render("{{literal}} {caller.tier}{missing}", ENV) == "{literal} gold"
    assert ex.render("{queue.position > 1}", ENV) == "yes"
    with pytest.raises(ex.ExprError) as err:
        ex.parse_template("number {queue.position ==}")
    assert err.value.col == 26
    with pytest.raises(ex.ExprError):
        ex.parse_template("unclosed {brace")
    assert ex.render("unclosed {brace", ENV) == "unclosed {brace"  # never raises at run time


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.()[],'\"=!<> andortuefls01-", max_size=40))
def test_random_text_parses_or_fails_cleanly_and_evaluation_is_total(text: str) -> None:
    try:
        parsed = ex.parse(text)
    except ex.ExprError as exc:
        assert 1 <= exc.col <= len(text) + 1
        return
    ex.evaluate(parsed, {"a": {"b": [1, "x", None]}, "b": "ab"})


@pytest.mark.parametrize(
    ("source", "col", "limit"),
    [
        # 200 nested parentheses crashed the compiler with RecursionError (issue 11, defect 6)
        ("(" * 200 + "true" + ")" * 200, ex.MAX_NESTING + 1, "nested more than"),
        ("[" * 40 + "1" + "]" * 40, ex.MAX_NESTING + 1, "nested more than"),
        ("not " * 40 + "true", 4 * ex.MAX_NESTING + 1, "nested more than"),
        ("9" * 5000 + " == 1", 1, "digits"),  # int() refuses 4300+ digits: a ValueError, not a diagnostic
    ],
)
def test_hostile_expressions_fail_with_the_limit_and_a_column(source: str, col: int, limit: str) -> None:
    with pytest.raises(ex.ExprError) as err:
        ex.parse(source)
    assert err.value.col == col and limit in err.value.message


def test_expression_tree_depth_is_bounded_and_the_limit_itself_is_fine() -> None:
    within = "(" * ex.MAX_NESTING + "a" + ")" * ex.MAX_NESTING
    assert ex.evaluate(ex.parse(within), {"a": 1}) == 1
    chain = " or ".join(["x == 1"] * 1500)  # variables() and evaluate() recurse over the tree
    with pytest.raises(ex.ExprError) as err:
        ex.parse(chain)
    assert f"more than {ex.MAX_DEPTH} levels" in err.value.message and 1 <= err.value.col <= len(chain)
    ok = " or ".join(["x == 1"] * (ex.MAX_DEPTH - 1))
    assert ex.evaluate(ex.parse(ok), {"x": 1}) is True
