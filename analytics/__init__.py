"""analytics: the voice of the customer's pure cores (no I/O, time is an argument).

- :mod:`analytics.prosody`: agitation (arousal from loudness, pitch and rate) against a
  speaker's own baseline;
- :mod:`analytics.keywords`: configured phrases per category, the spotter's keyword file,
  and picking among overlapping hits;
- :mod:`analytics.qa`: talk spans, QA flags, secure-gap positions, sentiment and its trend.

The adapters (pocketsphinx, Vosk, VADER, the cue workers and the QA pool) live in hotline/.
"""

from __future__ import annotations

from . import keywords, prosody, qa

__all__ = ["keywords", "prosody", "qa"]
