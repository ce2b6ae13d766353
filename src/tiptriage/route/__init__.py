"""Jurisdictions as data, and confidence-aware routing of a report to the agency that should receive it."""
