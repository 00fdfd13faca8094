"""hotline: configuration, CLI and the wiring of ivr, acd, cti_bridge and telephony."""

__version__ = "0.1.0"
