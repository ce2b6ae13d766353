"""The simulator's calibration, as data: every figure with its source.

The default instance is read from ``tiptriage/data/simulation_calibration.json``. Each figure is a
:class:`Figure` (value, source, status, note). ``source`` names S-ids of the research register
(``../shared/reference/research/SOURCES.md``), ``issue`` for the project's stated national scale,
``statute`` for a legal rule, ``derived`` for a value computed from the others, or ``assumption`` for a
design choice that no source consulted gives (replace it with an agency's own data).

Change a calibration with ``model_copy``/``with_updates``; nothing here reads or writes the operational store.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CLASSES",
    "LIVE_VICTIM_CLASSES",
    "Bursts",
    "Calibration",
    "ClassIndicators",
    "Figure",
    "FloatListFigure",
    "IntSpec",
    "derived_class_mix",
    "load_calibration",
    "load_default_calibration",
]

CLASSES: tuple[str, ...] = (
    "imminent_danger",
    "sextortion",
    "enticement_meeting",
    "suspected_production",
    "known_possession",
    "viral_reshare",
    "informational",
    "spam",
)
LIVE_VICTIM_CLASSES: tuple[str, ...] = ("imminent_danger", "sextortion", "enticement_meeting", "suspected_production")
DEFAULT_RESOURCE = "simulation_calibration.json"

Status = Literal["primary", "secondary", "unverified", "assumption", "issue", "statute", "derived"]
_MODEL = ConfigDict(extra="forbid", frozen=True)


class Figure(BaseModel):
    """A number and where it comes from."""

    model_config = _MODEL
    value: float
    source: str = Field(min_length=1)
    status: Status
    note: str = ""


class FloatListFigure(BaseModel):
    model_config = _MODEL
    value: list[float]
    source: str = Field(min_length=1)
    status: Status
    note: str = ""


class IntListFigure(BaseModel):
    model_config = _MODEL
    value: list[int]
    source: str = Field(min_length=1)
    status: Status
    note: str = ""


class MapFigure(BaseModel):
    model_config = _MODEL
    value: dict[str, float]
    source: str = Field(min_length=1)
    status: Status
    note: str = ""


class Volume(BaseModel):
    model_config = _MODEL
    referrals_per_year: Figure
    task_forces: Figure
    agency_shares: FloatListFigure
    initial_backlog_days: Figure


class Bursts(BaseModel):
    model_config = _MODEL
    per_year: Figure
    min_days: Figure
    max_days: Figure
    extra_volume: Figure
    classes: MapFigure


class WorkingHours(BaseModel):
    model_config = _MODEL
    workdays: IntListFigure
    start_hour: Figure
    hours_per_day: Figure

    @model_validator(mode="after")
    def _check(self) -> WorkingHours:
        days = self.workdays.value
        if not days or len(set(days)) != len(days) or any(d < 0 or d > 6 for d in days):
            raise ValueError("working_hours.workdays: distinct day numbers 0 (Monday) to 6 (Sunday), at least one")
        if not 0 < self.hours_per_day.value <= 24 or not 0 <= self.start_hour.value < 24:
            raise ValueError("working_hours: hours_per_day in (0, 24], start_hour in [0, 24)")
        if self.start_hour.value + self.hours_per_day.value > 24:
            raise ValueError("working_hours: the tip block must end by midnight (start_hour + hours_per_day <= 24)")
        return self


class IntSpec(BaseModel):
    """With probability ``p`` a uniform integer in [lo, hi]; otherwise ``otherwise`` (None = missing)."""

    model_config = _MODEL
    p: float = Field(ge=0, le=1)
    lo: int
    hi: int
    otherwise: int | None = 0


class ClassIndicators(BaseModel):
    """Per class: incident-type probabilities, P(true) of bool indicators, integer indicator specs."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)
    incident_type: dict[str, float]
    bools: dict[str, float] = Field(default_factory=dict, alias="bool")
    ints: dict[str, IntSpec] = Field(default_factory=dict, alias="int")


class Indicators(BaseModel):
    model_config = _MODEL
    source: str
    note: str = ""
    classes: dict[str, ClassIndicators]


class Calibration(BaseModel):
    """Every input of the simulator. Built from the JSON data file; see the module docstring."""

    model_config = _MODEL
    name: str
    version: int
    description: str = ""
    references: dict[str, Figure]
    volume: Volume
    class_mix: dict[str, Figure]
    weekly_pattern: FloatListFigure
    bursts: Bursts
    working_hours: WorkingHours
    investigators_per_agency: Figure
    handling_hours: dict[str, Figure]
    handling_tier_factor: MapFigure
    handling_cv: Figure
    preservation_days: Figure
    indicators: Indicators

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        errors: list[str] = []
        for section, keys in (("class_mix", set(self.class_mix)), ("handling_hours", set(self.handling_hours)),
                              ("indicators.classes", set(self.indicators.classes))):
            if keys != set(CLASSES):
                errors.append(f"{section}: needs exactly the classes {', '.join(CLASSES)} (missing {sorted(set(CLASSES) - keys)}, unknown {sorted(keys - set(CLASSES))})")
        shares = [f.value for f in self.class_mix.values()]
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-4):
            errors.append(f"class_mix: shares must be non-negative and sum to 1 (sum {sum(shares):.6f})")
        if len(self.weekly_pattern.value) != 7 or any(v < 0 for v in self.weekly_pattern.value) or sum(self.weekly_pattern.value) <= 0:
            errors.append("weekly_pattern: seven non-negative values, Monday first")
        if unknown := set(self.bursts.classes.value) - set(CLASSES):
            errors.append(f"bursts.classes: unknown classes {sorted(unknown)}")
        if self.bursts.classes.value and sum(self.bursts.classes.value.values()) <= 0:
            errors.append("bursts.classes: weights must sum above 0")
        if not 1 <= self.bursts.min_days.value <= self.bursts.max_days.value:
            errors.append("bursts: 1 <= min_days <= max_days")
        shares_a = self.volume.agency_shares.value
        if shares_a and (len(shares_a) != int(self.volume.task_forces.value) or any(s < 0 for s in shares_a) or sum(shares_a) <= 0):
            errors.append("volume.agency_shares: empty (even split) or one non-negative weight per task force")
        if set(self.handling_tier_factor.value) != {"1", "2", "3", "4"}:
            errors.append("handling_tier_factor: one factor for each tier '1'..'4'")
        if self.handling_cv.value < 0 or any(f.value <= 0 for f in self.handling_hours.values()):
            errors.append("handling: hours must be positive and handling_cv non-negative")
        if self.preservation_days.value <= 0 or self.volume.referrals_per_year.value < 0 or self.volume.task_forces.value < 1:
            errors.append("preservation_days must be positive, referrals_per_year non-negative, task_forces at least 1")
        for klass, spec in self.indicators.classes.items():
            if not spec.incident_type or not math.isclose(sum(spec.incident_type.values()), 1.0, abs_tol=1e-6):
                errors.append(f"indicators.classes.{klass}.incident_type: probabilities must sum to 1")
            for name, p in spec.bools.items():
                if not 0 <= p <= 1:
                    errors.append(f"indicators.classes.{klass}.bool.{name}: a probability in [0, 1]")
            for name, s in spec.ints.items():
                if s.lo > s.hi:
                    errors.append(f"indicators.classes.{klass}.int.{name}: lo > hi")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # -- convenient views ------------------------------------------------------------------------------

    def mix(self) -> dict[str, float]:
        """Class shares, normalised to sum to 1, in ``CLASSES`` order."""
        total = sum(self.class_mix[c].value for c in CLASSES)
        return {c: self.class_mix[c].value / total for c in CLASSES}

    def with_updates(self, **changes: Any) -> Calibration:
        """A validated copy with some figures replaced by plain values, e.g. ``referrals_per_year=50_000``.

        Keys: referrals_per_year, task_forces, initial_backlog_days, investigators_per_agency, handling_cv,
        preservation_days, bursts_per_year, hours_per_day, start_hour, workdays, weekly_pattern,
        handling_hours (a dict class -> hours). The changed figures are marked ``source="override"``.
        """
        data = self.model_dump()

        def put(path: tuple[str, ...], value: Any) -> None:
            node = data
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = {"value": value, "source": "override", "status": "assumption", "note": "set by the caller"}

        paths = {
            "referrals_per_year": ("volume", "referrals_per_year"), "task_forces": ("volume", "task_forces"),
            "initial_backlog_days": ("volume", "initial_backlog_days"), "investigators_per_agency": ("investigators_per_agency",),
            "handling_cv": ("handling_cv",), "preservation_days": ("preservation_days",), "bursts_per_year": ("bursts", "per_year"),
            "hours_per_day": ("working_hours", "hours_per_day"), "start_hour": ("working_hours", "start_hour"),
            "workdays": ("working_hours", "workdays"), "weekly_pattern": ("weekly_pattern",),
        }
        for key, value in changes.items():
            if key == "handling_hours":
                for klass, hours in dict(value).items():
                    put(("handling_hours", klass), float(hours))
            elif key in paths:
                put(paths[key], value)
            else:
                raise KeyError(f"unknown calibration key '{key}'")
        if "task_forces" in changes and "agency_shares" not in changes:
            data["volume"]["agency_shares"]["value"] = []
        return Calibration.model_validate(data)

    def summary(self) -> dict[str, Any]:
        """The figures a run used, with their sources, for reports."""
        def fig(f: Figure | FloatListFigure | IntListFigure | MapFigure) -> dict[str, Any]:
            return {"value": f.value, "source": f.source}

        return {
            "name": self.name, "version": self.version,
            "referrals_per_year": fig(self.volume.referrals_per_year), "task_forces": fig(self.volume.task_forces),
            "class_mix": {c: fig(self.class_mix[c]) for c in CLASSES},
            "handling_hours": {c: fig(self.handling_hours[c]) for c in CLASSES},
            "hours_per_day": fig(self.working_hours.hours_per_day), "workdays": fig(self.working_hours.workdays),
            "investigators_per_agency": fig(self.investigators_per_agency),
            "preservation_days": fig(self.preservation_days),
        }


def load_calibration(path: str | Path) -> Calibration:
    """A calibration from a JSON file of the same shape as the default."""
    return Calibration.model_validate(json.loads(Path(path).read_text("utf-8")))


_DEFAULT: Calibration | None = None


def load_default_calibration() -> Calibration:
    global _DEFAULT
    if _DEFAULT is None:
        text = resources.files("tiptriage.data").joinpath(DEFAULT_RESOURCE).read_text("utf-8")
        _DEFAULT = Calibration.model_validate(json.loads(text))
    return _DEFAULT


def derived_class_mix(cal: Calibration) -> dict[str, float]:
    """The live-victim shares recomputed from the reference figures, as the class_mix notes state them."""
    r = {k: f.value for k, f in cal.references.items()}
    return {
        "imminent_danger": r["urgent_escalations_2023"] / r["ncmec_reports_2023"],
        "sextortion": r["sextortion_2023"] / r["ncmec_reports_2023"],
        "enticement_meeting": (r["enticement_2023"] - r["sextortion_2023"]) / r["ncmec_reports_2023"],
        "suspected_production": (r["incident_molestation_2022"] + r["incident_trafficking_2022"] + r["incident_tourism_2022"]) / r["ncmec_reports_2022"],
    }
