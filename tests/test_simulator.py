"""Erlang C math, and the simulator (driving the real router) checked against it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from acd import erlang
from acd.simulator import SimulationError, main, scenario_from_dict, simulate


# ---------------------------------------------------------------- Erlang math
def test_erlang_known_values() -> None:
    # c = 3, a = 2: B = (8/6) / (1 + 2 + 2 + 8/6) = 4/19, C = 4/9
    assert erlang.erlang_b(3, 2.0) == pytest.approx(4 / 19)
    assert erlang.erlang_c(3, 2.0) == pytest.approx(4 / 9)
    # ASA = C * aht / (c - a); SL = 1 - C exp(-(c - a) t / aht)
    assert erlang.asa(3, 2.0, 60.0) == pytest.approx(4 / 9 * 60)
    assert erlang.service_level(3, 2.0, 60.0, 30.0) == pytest.approx(1 - 4 / 9 * math.exp(-0.5))
    assert erlang.occupancy(3, 2.0) == pytest.approx(2 / 3)
    assert erlang.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang.erlang_c(4, 4.0) == 1.0 and erlang.service_level(4, 5.0, 60, 20) == 0.0


def _erlang_c_logspace(c: int, a: float) -> float:
    """The textbook formula, summed in log space: an independent check at large c."""
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    top = c * math.log(a) - math.lgamma(c + 1) + math.log(c / (c - a))
    m = max([*logs, top])
    return math.exp(top - m) / (sum(math.exp(x - m) for x in logs) + math.exp(top - m))


@pytest.mark.parametrize(("c", "a"), [(10, 8.0), (100, 90.0), (300, 285.0), (500, 499.0), (2000, 1900.0)])
def test_erlang_c_is_stable_for_hundreds_of_agents(c: int, a: float) -> None:
    value = erlang.erlang_c(c, a)
    assert 0.0 < value < 1.0
    assert value == pytest.approx(_erlang_c_logspace(c, a), rel=1e-9)


def test_staffing_for_80_20() -> None:
    # 240 calls/h, 180 s AHT = 12 erlangs: 15 agents give 80/20, 14 do not
    c = erlang.agents_for_service_level(240, 180, 20, 0.80)
    assert erlang.service_level(c, 12.0, 180, 20) >= 0.80 > erlang.service_level(c - 1, 12.0, 180, 20)


# ----------------------------------------------------------- the Erlang C check
def mmc(occupancy: float, calls: int, *, agents: int = 10, aht: float = 100.0, seed: int = 7) -> dict:
    """One queue, one skill, Poisson arrivals, exponential talk, no abandonment,
    zero ring delay, zero wrap-up: the M/M/c queue."""
    rate = occupancy * agents * 3600.0 / aht  # calls per hour
    scenario = scenario_from_dict(
        {
            "hours": calls / rate,
            "seed": seed,
            "warmup": 20 * aht,  # the queue starts empty; drop the start-up transient
            "stats": {"service_level_threshold": 20.0, "short_abandon_threshold": 0.0},
            "queues": [
                {
                    "name": "q",
                    "skills": ["s"],
                    "rate": rate,
                    "talk": aht,
                    "wrap_up": 0.0,
                    "ring_timeout": 1e9,  # never times out: answers are immediate
                }
            ],
            "agents": [{"count": agents, "skills": ["s"], "answer_delay": 0.0, "name": "a"}],
        }
    )
    return simulate(scenario)["queues"]["q"]


# Tolerances. A queue's waits are strongly correlated from one caller to the next, so
# the binomial sqrt(p(1-p)/n) badly understates the error. We measured the spread
# directly: 16 independent seeds of 40,000 calls each, 10 agents, AHT 100 s, T = 20 s
# (scratch script, same code path as mmc()). Standard deviation across seeds:
#   occupancy 0.70: P(wait) 0.0064, SL 0.0056
#   occupancy 0.85: P(wait) 0.0178, SL 0.0203
#   occupancy 0.95: P(wait) 0.0185, SL 0.0264
# (the seed means were within 2 standard errors of Erlang C at every load). The
# spread falls as 1/sqrt(calls), so with the call counts below the tolerance is
# about 4 standard deviations (a correct simulator fails with a fresh seed well under
# once in 10,000 runs), while a modelling error such as a lost wrap-up, a ring delay
# or a non-FIFO line moves these figures by far more. The seed is fixed, so the test
# is deterministic; its run time is about 10 s on one core.
CASES = [
    # occupancy, calls, P(wait) tolerance, SL tolerance
    (0.70, 40_000, 0.03, 0.03),  # sd 0.0064 / 0.0056
    (0.85, 60_000, 0.06, 0.07),  # sd 0.0145 / 0.0166
    (0.95, 100_000, 0.05, 0.07),  # sd 0.0117 / 0.0167
]


@pytest.mark.parametrize(("occupancy", "calls", "tol_wait", "tol_sl"), CASES)
def test_simulated_mmc_matches_erlang_c(occupancy: float, calls: int, tol_wait: float, tol_sl: float) -> None:
    q = mmc(occupancy, calls)
    predicted = q["erlang_c"]
    assert q["abandoned"] == 0 and q["short_abandoned"] == 0
    assert q["answered"] >= 0.95 * calls
    assert q["p_wait"] == pytest.approx(predicted["p_wait"], abs=tol_wait)
    assert q["sl_offered"] == pytest.approx(predicted["service_level"], abs=tol_sl)
    assert q["occupancy"] == pytest.approx(occupancy, abs=0.03)


# --------------------------------------------------------------- other features
def test_patience_ring_delay_wrap_up_and_lognormal() -> None:
    raw = {
        "hours": 2,
        "seed": 3,
        "queues": [
            {
                "name": "billing",
                "skills": ["billing"],
                "rate": 300,
                "talk": 120,
                "handle": "lognormal",
                "cv": 0.5,
                "patience": 60,
                "wrap_up": 10,
                "ring_timeout": 8,
            },
            {"name": "sales", "skills": ["sales"], "rate": 60, "talk": 200, "ring_timeout": 8},
        ],
        "agents": [
            {"count": 8, "skills": ["billing"], "answer_delay": 2, "name": "b"},
            {"count": 4, "skills": ["billing", "sales"], "answer_delay": 9, "name": "s"},  # never answers
        ],
    }
    result = simulate(scenario_from_dict(raw))
    billing, sales = result["queues"]["billing"], result["queues"]["sales"]
    assert billing["abandoned"] + billing["short_abandoned"] > 0
    assert billing["offered"] == billing["answered"] + billing["abandoned"] + billing["short_abandoned"]
    assert billing["avg_wrap"] == pytest.approx(10)
    assert billing["asa"] >= 2.0  # every answer takes the 2 s ring
    assert sales["answered"] == 0  # only the agents who never answer have the skill
    assert "erlang_c" not in billing  # two queues: not M/M/c
    assert "skipped" in result["ewt"] or result["ewt"]["calls"] > 0


def test_same_seed_same_figures() -> None:
    def run() -> dict:
        r = simulate(scenario_from_dict({"hours": 1, "seed": 5, "queues": [
            {"name": "q", "skills": [], "rate": 200, "talk": 100, "patience": 90}
        ], "agents": [{"count": 6, "skills": []}]}))  # fmt: skip
        return r["queues"]

    assert run() == run()


def test_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--agents", "5", "--rate", "100", "--aht", "120", "--hours", "1", "--seed", "2", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["queues"]) == {"main"}
    assert out["queues"]["main"]["erlang_c"]["load_erlangs"] == pytest.approx(100 * 120 / 3600)
    assert out["calls"] > 0 and out["wall_seconds"] > 0


def test_cli_reads_a_toml_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "day.toml"
    path.write_text(
        "hours = 1\nseed = 4\n[stats]\nservice_level_threshold = 30\n"
        '[[queues]]\nname = "q"\nskills = ["x"]\nrate = 120\ntalk = 90\npatience = 45\n'
        '[[agents]]\ncount = 4\nskills = ["x"]\n'
    )
    assert main([str(path), "--hours", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hours"] == 0.5 and out["service_level_threshold"] == 30
    assert main([str(path)]) == 0
    assert "SL30" in capsys.readouterr().out


def test_bad_scenarios_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SimulationError):
        scenario_from_dict({"queues": [{"name": "q", "rate": 1}], "agents": []})
    odd = scenario_from_dict(
        {"queues": [{"name": "q", "rate": 1, "talk": 1, "handle": "x"}], "agents": [{"count": 1}]}
    )
    with pytest.raises(SimulationError):
        simulate(odd)
    bad = tmp_path / "bad.toml"
    bad.write_text("queues = [")
    assert main([str(bad)]) == 2
    assert "hotline simulate:" in capsys.readouterr().err


def test_the_scenario_in_the_docs_runs() -> None:
    import dataclasses
    import re
    import tomllib

    doc = (Path(__file__).resolve().parent.parent / "docs" / "acd-statistics.md").read_text()
    block = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert block is not None
    scenario = scenario_from_dict(tomllib.loads(block.group(1)))
    assert scenario.queues[0].handle == "lognormal" and scenario.agents[0].answer_delay == 2
    result = simulate(dataclasses.replace(scenario, hours=0.5, warmup=0.0))
    billing = result["queues"]["billing"]
    assert billing["answered"] > 0 and billing["avg_wrap"] == pytest.approx(10)


# ----------------------------------------------------------------------- EWT
def _mmc_ewt(*, oracle: bool, calls: int = 30_000, seed: int = 7) -> dict:
    agents, aht, occupancy = 10, 100.0, 0.85
    rate = occupancy * agents * 3600.0 / aht
    queue = {"name": "q", "skills": ["s"], "rate": rate, "talk": aht, "wrap_up": 0.0, "ring_timeout": 1e9}
    if oracle:  # the true AHT, never updated: the best this estimator form can do
        queue.update(default_aht=aht, aht_smoothing=1e-9)
    scenario = scenario_from_dict(
        {
            "hours": calls / rate,
            "seed": seed,
            "warmup": 20 * aht,
            "queues": [queue],
            "agents": [{"count": agents, "skills": ["s"], "name": "a"}],
        }
    )
    return simulate(scenario)["ewt"]


# EWT error bound. In M/M/c with FIFO service, a caller queued at position k behind
# c busy agents waits the sum of k exponential gaps of mean AHT/c, so k * AHT / c (the
# estimator) is unbiased *when the AHT is known*, and its error is irreducible noise:
# E|wait - k AHT/c| = 2 (AHT/c) / e ~ 7.4 s at k = 1, growing as (AHT/c) sqrt(2k/pi).
# So the bound is relative to an "oracle" run (true AHT, same seed): the learned
# moving average (started at the default 180 s, true AHT 100 s) may add at most 20 %
# to the oracle's mean absolute error. Measured over seeds 1-8 (30,000 calls, load
# 0.85, 10 agents): oracle MAE 8.2-10.3 s (relative to the mean wait 0.27-0.30,
# bias within +-0.4 s); learned MAE 8.7-11.3 s = 1.06-1.10 x the oracle, bias
# +1.3..+2.2 s (the average is high just when long services have built a queue).
# Both runs take about 1.5 s together.
def test_ewt_error_in_mmc_is_close_to_the_irreducible_error() -> None:
    learned, oracle = _mmc_ewt(oracle=False), _mmc_ewt(oracle=True)
    assert learned["calls"] > 25_000
    assert abs(oracle["mean_error"]) < 1.0  # unbiased with the true AHT
    assert learned["mean_abs_error"] <= 1.2 * oracle["mean_abs_error"]
    assert abs(learned["mean_error"]) <= 0.1 * learned["mean_wait"]
    assert learned["relative_mae"] <= 0.40
