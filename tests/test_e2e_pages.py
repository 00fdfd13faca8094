"""/wallboard and /agent in a real browser (Debian's chromium, headless, driven by selenium
through chromium-driver) against the real server, with a SIPp caller and SIPp phones.

The shipped main flow sends an assisted caller (a profile imported from CSV) straight to the
`care` queue; the wallboard shows the call waiting, then connected; the agent page gets the
screen-pop with the profile, sets a disposition and shows the wrap-up; the supervisor's
buttons ring a phone; a wallboard that lost its socket catches up with `since`.
Set HOTLINE_SCREENSHOTS=docs to refresh docs/wallboard.png and docs/agent.png.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from .helpers import ROOT, CtiClient, HotlineProcess
from .peers import Sipp, dial

TOKENS = """
[[cti.tokens]]
name = "alice"
secret = "alice-secret"
scopes = ["agent"]
agent = "1001"
[[cti.tokens]]
name = "wall"
secret = "wall-secret"
scopes = ["read", "supervise"]
agent = "1009"
"""


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


@pytest.fixture
def browsers() -> Iterator[tuple[webdriver.Chrome, webdriver.Chrome]]:
    wall, desk = browser(), browser()
    try:
        yield wall, desk
    finally:
        wall.quit()
        desk.quit()


def wait(
    driver: webdriver.Chrome, what: str, check: Callable[[webdriver.Chrome], Any], timeout: float = 20
) -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check)
    except Exception:
        logs = driver.execute_script("return document.body.innerText")
        raise AssertionError(f"the page never showed {what}; it shows:\n{logs}") from None


def css(driver: webdriver.Chrome, selector: str) -> Any:
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found else None


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.execute_script("return document.getElementById(arguments[0]).innerText", element_id))


def inner(driver: webdriver.Chrome, selector: str) -> str:
    """The text of the element now (the pages redraw every second: no stale references)."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && e.innerText", selector
    )
    return str(found or "")


def click(driver: webdriver.Chrome, selector: str) -> None:
    assert driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e", selector
    ), selector


async def test_wallboard_and_agent_page_work_a_call(
    tmp_path: Path, browsers: tuple[webdriver.Chrome, webdriver.Chrome]
) -> None:
    wall, desk = browsers
    agent_phone = Sipp("agent_uas", tmp_path, rtp_echo=True, keys={"answer_delay": 800}, name="agent").start()
    boss_phone = Sipp("agent_uas", tmp_path, rtp_echo=True, keys={"answer_delay": 300}, name="boss").start()
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=[
            {"id": "1001", "name": "Alice", "skills": ["certified"], "contact": agent_phone.uri},
            {"id": "1009", "name": "Lead", "contact": boss_phone.uri},
        ],
        queues=[
            {"name": "sales", "skills": ["sales"]},
            {"name": "support", "skills": ["support"]},
            {"name": "operator"},
            {
                "name": "care",
                "skills": ["certified"],
                "wrap_up": 60,
                "dispositions": ["resolved", "referred"],
            },
        ],
        extra_toml=TOKENS,
    )
    server.workdir.mkdir(parents=True)
    (server.workdir / "config.toml").write_text(server.config_text())
    callers = tmp_path / "callers.csv"
    callers.write_text("number,tier,assisted,name\n5550142,gold,yes,Hana Kim\n")
    imported = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "profiles",
            "import",
            str(callers),
            "--config",
            str(server.workdir / "config.toml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert imported.returncode == 0, imported.stderr
    server.start()
    client = await CtiClient.session(server)
    base = f"http://127.0.0.1:{server.http_port}"
    shots = Path(os.environ.get("HOTLINE_SCREENSHOTS") or tmp_path)
    try:
        # the wall display takes its token from the address, then drops it from the address bar
        await asyncio.to_thread(wall.get, f"{base}/wallboard?token=wall-secret")
        wait(wall, "live", lambda d: text(d, "status") == "live")
        assert "token" not in wall.current_url
        assert css(wall, 'tr[data-queue="care"]') is not None

        await asyncio.to_thread(desk.get, f"{base}/agent")
        desk.find_element(By.ID, "token").send_keys("alice-secret")
        desk.find_element(By.ID, "signin").click()
        wait(desk, "live", lambda d: text(d, "status") == "live")
        click(desk, "#btn-login")
        wait(desk, "not ready", lambda d: css(d, '#agent-state[data-state="not_ready"]'))

        caller = dial(
            server,
            "caller_dtmf",
            tmp_path,
            keys={"caller": "5550142", "dtmf_delay": 60000, "talk_ms": 1000},
            timeout=90,
        ).start()
        queued = await client.wait_event("call.queued", timeout=20)
        cid = queued["call_id"]
        assert queued["data"]["queue"] == "care" and queued["data"]["priority"] == 8
        wait(wall, "the call waiting", lambda d: css(d, f'tr[data-call="{cid}"][data-phase="queued"]'))
        wait(wall, "one waiting in care", lambda d: css(d, 'tr[data-queue="care"] td[data-waiting="1"]'))

        click(desk, "#btn-ready")
        wait(desk, "the screen-pop", lambda d: css(d, 'dd[data-field="name"]'))
        assert inner(desk, 'dd[data-field="name"]') == "Hana Kim"
        assert inner(desk, 'dd[data-field="tier"]') == "gold"
        assert css(desk, 'dd[data-field="assisted"]') is not None
        await client.wait_event("call.connected", timeout=20)
        wait(wall, "the call connected", lambda d: css(d, f'tr[data-call="{cid}"][data-phase="connected"]'))
        wait(desk, "the call connected", lambda d: text(d, "call-phase") == "connected")

        # the supervisor listens, then barges, from the wallboard
        click(wall, f'tr[data-call="{cid}"] button[data-mode="listen"]')
        await client.wait_event("supervisor.monitor_started", timeout=15, mode="listen")
        wait(wall, "listening", lambda d: "1009 (listen)" in inner(d, f'tr[data-call="{cid}"]'))
        click(wall, f'tr[data-call="{cid}"] button[data-mode="barge"]')
        await client.wait_event("supervisor.monitor_changed", timeout=15, mode="barge")
        wait(wall, "barging", lambda d: "1009 (barge)" in inner(d, f'tr[data-call="{cid}"]'))

        # the agent gives the call a disposition while talking
        Select(desk.find_element(By.ID, "dispo-code")).select_by_value("referred")
        desk.find_element(By.ID, "dispo-note").send_keys("to the branch")
        click(desk, "#btn-dispo")
        wait(
            desk,
            "the disposition saved",
            lambda d: text(d, "dispo-result") == "Saved: referred (to the branch)",
        )
        if os.environ.get("HOTLINE_SCREENSHOTS"):
            await asyncio.sleep(3.0)  # let the clocks on the pages run a little for the docs
        await asyncio.to_thread(wall.save_screenshot, str(shots / "wallboard.png"))
        await asyncio.to_thread(desk.save_screenshot, str(shots / "agent.png"))

        # the wallboard loses its socket; meanwhile the supervisor leaves and the call ends
        wall.execute_script("hotlineWallboard.sock.closed = true; hotlineWallboard.sock.ws.close();")
        wait(wall, "down", lambda d: text(d, "status") == "down")
        assert (await client.request("call.monitor_stop", call_id=cid))["ok"]
        assert (await client.request("call.hangup", call_id=cid))["ok"]
        await client.wait_event("call.ended", timeout=15)
        assert css(wall, f'tr[data-call="{cid}"]') is not None  # stale while offline
        wall.execute_script("hotlineWallboard.sock.closed = false; hotlineWallboard.sock.connect();")
        wait(wall, "the call gone after the replay", lambda d: css(d, f'tr[data-call="{cid}"]') is None)
        assert wall.execute_script("return hotlineWallboard.state.snapshots") == 1  # resumed with since
        wait(wall, "the agent in wrap-up", lambda d: css(d, 'tr[data-agent="1001"][data-state="wrap_up"]'))

        # the agent page shows the wrap-up; a second code replaces the first
        wait(desk, "wrap-up", lambda d: d.find_element(By.ID, "wrap").is_displayed())
        Select(desk.find_element(By.ID, "dispo-code")).select_by_value("resolved")
        click(desk, "#btn-dispo")
        wait(desk, "the new disposition", lambda d: text(d, "dispo-result").startswith("Saved: resolved"))
        assert caller.wait(30) in (0, 1)  # hung up by the server (counted as failed or not by SIPp)
    finally:
        await client.close()
        assert server.stop() == 0
        agent_phone.stop()
        boss_phone.stop()
    db = sqlite3.connect(server.db)
    (row,) = db.execute("SELECT queue, agent_id, disposition FROM calls WHERE call_id = ?", (cid,))
    db.close()
    assert row == ("care", "1001", "resolved")
    ended = next(e for e in client.events if e["event"] == "call.ended")
    assert ended["data"]["summary"]["disposition_code"] == "referred"  # the one given while talking
    offered = next(e for e in client.events if e["event"] == "agent.offered")
    assert offered["data"]["data"]["profile"]["assisted"] is True
