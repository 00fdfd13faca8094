"""Who may run the floor's commands: scope supervise for monitoring, agent tokens for their
own calls only (the call check itself is in tests/test_e2e_pages.py and the controller's)."""

from __future__ import annotations

import cti_bridge

SUPERVISOR = cti_bridge.Token("lead", "s", frozenset({"read", "supervise"}), "1009")
AGENT = cti_bridge.Token("alice", "a", frozenset({"agent"}), "1001")
CONTROL = cti_bridge.Token("crm", "c", frozenset({"control"}))
ADMIN = cti_bridge.Token("root", "r", frozenset({"admin"}))


def test_monitoring_needs_supervise_and_control_does_not_include_it() -> None:
    for cmd in ("call.monitor", "call.monitor_mode", "call.monitor_stop"):
        assert SUPERVISOR.allows(cmd, {"call_id": "c1"})
        assert ADMIN.allows(cmd, {"call_id": "c1"})
        assert not CONTROL.allows(cmd, {"call_id": "c1"})
        assert not AGENT.allows(cmd, {"call_id": "c1", "agent": "1001"})
    assert SUPERVISOR.allows("subscribe", {}) and SUPERVISOR.allows("floor.snapshot", {})
    assert not SUPERVISOR.allows("call.hangup", {"call_id": "c1"})


def test_agent_tokens_run_call_commands_for_their_own_agent_only() -> None:
    for cmd in ("call.hold", "call.consult", "call.transfer_complete", "agent.disposition", "call.assist"):
        assert AGENT.allows(cmd, {"call_id": "c1", "agent": "1001"})
        assert not AGENT.allows(cmd, {"call_id": "c1", "agent": "1002"})
        assert not AGENT.allows(cmd, {"call_id": "c1"})  # no agent given: refused
        assert CONTROL.allows(cmd, {"call_id": "c1"})
    assert not AGENT.allows("call.make", {"agent": "1001"})  # still control only
