"""The published event schemas are generated from the code and are current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from hotline import vocabulary

ROOT = Path(__file__).resolve().parent.parent


def test_published_schemas_are_generated_from_the_event_classes() -> None:
    published = json.loads((ROOT / "docs" / "cti-events.schema.json").read_text())
    assert published == vocabulary.schemas(), (
        "run: python -m hotline.vocabulary > docs/cti-events.schema.json"
    )
    for schema in published.values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_docs_list_every_event() -> None:
    doc = (ROOT / "docs" / "cti.md").read_text()
    for name in vocabulary.schemas():
        assert f"`{name}`" in doc, f"{name} is not described in docs/cti.md"


def validate_events(events: list[dict]) -> None:
    """Every event must be in the vocabulary and match its schema (used by the e2e tests)."""
    schemas = vocabulary.schemas()
    for event in events:
        assert event["event"] in schemas, f"{event['event']} is not in hotline/vocabulary.py"
        jsonschema.validate(event, schemas[event["event"]], format_checker=jsonschema.FormatChecker())
