"""tiptriage: explainable triage of CyberTipline-style reports."""

__version__ = "0.1.0"
