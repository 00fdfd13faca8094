"""Every event hotline publishes, in one list: the CTI vocabulary.

`python -m hotline.vocabulary > docs/cti-events.schema.json` regenerates the
published schemas; a test fails when that file is stale or an emitted event
is missing here.
"""

from __future__ import annotations

import json
import sys

import acd
import cti_bridge
import ivr
from calls import events as hev
from telephony import asr

from . import registrations, reload

EVENTS: tuple[type, ...] = (
    hev.CallOffered,
    hev.CallAnswered,
    hev.CallEnded,
    hev.RecordingReady,
    hev.RecordingFailed,
    hev.QueueStats,
    hev.EmergencyChanged,
    hev.OutboundStarted,
    hev.AssistStarted,
    hev.AssistDone,
    hev.MonitorStarted,
    hev.MonitorChanged,
    hev.MonitorEnded,
    hev.ConsultStarted,
    hev.ConsultConnected,
    hev.ConsultEnded,
    hev.ConferenceStarted,
    hev.CallTransferred,
    hev.DispositionSet,
    hev.CallKeyword,
    hev.CallAgitation,
    hev.CallAlert,
    hev.QaReady,
    hev.QaFailed,
    reload.FlowReloaded,
    reload.FlowRejected,
    ivr.IvrInput,
    ivr.IvrEscalated,
    ivr.IvrInterrupted,
    ivr.SurveyAnswered,
    registrations.AgentRegistered,
    registrations.AgentUnregistered,
    asr.AlertRaised,
    asr.AlertCleared,
    acd.events.CallQueued,
    acd.events.AgentOffered,
    acd.events.AgentOfferFailed,
    acd.events.CallConnected,
    acd.events.CallAbandoned,
    acd.events.AgentStateChanged,
    acd.events.CallOverflowed,
    acd.events.CallReprioritized,
    acd.events.CallbackRegistered,
    acd.events.CallbackOffered,
    acd.events.CallbackDialing,
    acd.events.CallbackConnected,
    acd.events.CallbackAttemptFailed,
    acd.events.CallbackAbandoned,
)


def schemas() -> dict[str, dict[str, object]]:
    return cti_bridge.vocabulary_schemas(EVENTS)


def main() -> None:
    json.dump(schemas(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
