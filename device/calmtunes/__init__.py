"""calmtunes: offline, biofeedback-driven calming music for a bedside Raspberry Pi."""

__version__ = "0.1.0"
