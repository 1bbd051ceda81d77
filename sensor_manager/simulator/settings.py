"""Configuration models of the simulator: rate, value model, anomalies and device variants.

These are the `simulation:`, `normal_parameters:`, `anomalies:`, `devices:` and `faults:` sections of the
project config; key names follow the seed simulator where it had them.
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fleetcore.models import StrictModel

Metric = Literal["temperature", "humidity", "pressure", "vibration", "voltage"]
AnomalyName = Literal["spike", "trend", "pattern", "missing_data", "noise"]
METRICS: tuple[Metric, ...] = ("temperature", "humidity", "pressure", "vibration", "voltage")
ANOMALY_TYPES: tuple[AnomalyName, ...] = ("spike", "trend", "pattern", "missing_data", "noise")
FAULT_TYPES = ("duplicate", "out_of_order", "offline_burst", "clock_skew")


class SimulationSettings(StrictModel):
    readings_per_second: float = Field(1.0, gt=0, le=10_000)
    run_time_seconds: float = Field(0, ge=0, le=10 * 365 * 86400, description="0 runs until stopped")
    commit_interval_seconds: float = Field(1.0, gt=0, le=60)
    commit_max_rows: int = Field(10_000, ge=1, le=1_000_000)
    status_interval_seconds: float = Field(2.0, gt=0, le=300)


class MetricParameters(StrictModel):
    mean: float
    std_dev: float = Field(gt=0)
    min: float
    max: float

    @model_validator(mode="after")
    def _bounds_contain_mean(self) -> "MetricParameters":
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        if not self.min <= self.mean <= self.max:
            raise ValueError(f"mean ({self.mean}) must lie within [min, max]")
        return self


class NormalParameters(StrictModel):
    temperature: MetricParameters = MetricParameters(mean=65, std_dev=2, min=50, max=80)
    humidity: MetricParameters = MetricParameters(mean=55, std_dev=10, min=0, max=100)
    pressure: MetricParameters = MetricParameters(mean=1013, std_dev=5, min=950, max=1050)
    vibration: MetricParameters = MetricParameters(mean=2.5, std_dev=0.5, min=0.1, max=10)
    voltage: MetricParameters = MetricParameters(mean=12, std_dev=0.1, min=11.5, max=12.5)


_DEFAULT_DURATIONS: dict[AnomalyName, int] = {"spike": 10, "trend": 300, "pattern": 120, "missing_data": 30, "noise": 60}


class AnomalyType(StrictModel):
    enabled: bool = True
    weight: float = Field(1.0, ge=0, le=1_000)
    duration_seconds: float = Field(60, gt=0, le=86_400)
    metrics: list[Metric] = list(METRICS)


class AnomalySettings(StrictModel):
    enabled: bool = True
    probability: float = Field(0.05, ge=0, le=1, description="expected fraction of readings inside an anomaly")
    missing_data_mode: Literal["skip", "null"] = "skip"
    types: dict[AnomalyName, AnomalyType] = Field(
        default_factory=lambda: {name: AnomalyType(duration_seconds=d) for name, d in _DEFAULT_DURATIONS.items()}
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_seed_alias(cls, data):
        # The seed's configs say `base_probability`; accept it as an alias of `probability`.
        if isinstance(data, dict) and "base_probability" in data:
            data = dict(data)
            value = data.pop("base_probability")
            data.setdefault("probability", value)
        return data

    @field_validator("types", mode="after")
    @classmethod
    def _fill_missing_types(cls, types):
        return {name: types.get(name, AnomalyType(duration_seconds=_DEFAULT_DURATIONS[name])) for name in ANOMALY_TYPES}


class WeightedChoice(StrictModel):
    name: str = Field(min_length=1, max_length=64)
    weight: float = Field(1.0, gt=0, le=1_000)


class VariantModifier(StrictModel):
    """Multipliers a device variant applies: to the anomaly probability and to single types' weights."""

    probability: float = Field(1.0, ge=0, le=100)
    types: dict[Literal["spike", "trend", "pattern", "missing_data", "noise"], float] = Field(default_factory=dict)

    @field_validator("types")
    @classmethod
    def _positive(cls, types):
        for name, factor in types.items():
            if not (factor >= 0 and math.isfinite(factor)):
                raise ValueError(f"{name}: factor must be a finite number >= 0")
        return types


class DeviceSettings(StrictModel):
    """Weighted tables the plan draws device variants from, and the behaviour each variant changes."""

    manufacturers: list[WeightedChoice] = [
        WeightedChoice(name=n) for n in ("SensorTech", "DataLogger", "DataSense", "MonitorPro", "EnvSense")
    ]
    models: list[WeightedChoice] = [
        WeightedChoice(name=n) for n in ("EnvMonitor-3000", "EnvMonitor-4000", "EnvMonitor-5000", "TempVibe-2000")
    ]
    firmware_versions: list[WeightedChoice] = [
        WeightedChoice(name=n) for n in ("1.3.2", "1.4.0", "1.4.1", "1.5.0", "2.0.1")
    ]
    # Keys: a manufacturer, a model, or a firmware prefix ending in ".x" (e.g. "1.4.x").
    modifiers: dict[str, VariantModifier] = {
        "1.4.x": VariantModifier(probability=1.5),
        "1.5.x": VariantModifier(probability=0.7),
        "EnvMonitor-3000": VariantModifier(types={"missing_data": 2.0}),
        "EnvMonitor-4000": VariantModifier(types={"pattern": 1.5}),
        "EnvMonitor-5000": VariantModifier(types={"spike": 1.5}),
        "SensorTech": VariantModifier(probability=1.2),
        "DataLogger": VariantModifier(probability=1.1),
        "DataSense": VariantModifier(probability=0.8),
        "MonitorPro": VariantModifier(probability=0.9),
    }


class DuplicateFault(StrictModel):
    rate: float = Field(0.01, ge=0, le=0.5, description="fraction of rows that are re-sent copies of the row before them")


class OutOfOrderFault(StrictModel):
    rate: float = Field(0.01, ge=0, le=0.5, description="fraction of rows written late, with their original timestamp")
    max_delay_seconds: float = Field(10, gt=0, le=3600, description="a late row is written up to this long after it was measured")


class OfflineBurstFault(StrictModel):
    rate: float = Field(0.02, ge=0, le=0.5, description="fraction of rows buffered while the sensor is offline")
    duration_seconds: float = Field(30, gt=0, le=86_400, description="how long a sensor stays silent before writing its buffer at once")


class ClockSkewFault(StrictModel):
    rate: float = Field(0.1, ge=0, le=1, description="fraction of sensors whose clock is off")
    max_offset_seconds: float = Field(300, ge=0, le=86_400, description="a skewed clock's offset is drawn from ± this")
    max_drift_ppm: float = Field(200, ge=0, le=100_000, description="and its drift (parts per million) from ± this")


class FaultSettings(StrictModel):
    """Delivery faults for testing downstream pipelines; every faulty row is labelled (`fault`, `duplicate_of`)."""

    enabled: bool = Field(False, description="off by default; on, the rates below apply (set one to 0 to leave it out)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="mixed with each sensor's seed: another value, other faults")
    duplicate: DuplicateFault = DuplicateFault()
    out_of_order: OutOfOrderFault = OutOfOrderFault()
    offline_burst: OfflineBurstFault = OfflineBurstFault()
    clock_skew: ClockSkewFault = ClockSkewFault()

    @model_validator(mode="after")
    def _rates_leave_clean_rows(self) -> "FaultSettings":
        # Each row carries one label, so the three per-row rates share the rows.
        total = self.duplicate.rate + self.out_of_order.rate + self.offline_burst.rate
        if total > 0.9:
            raise ValueError(f"duplicate.rate + out_of_order.rate + offline_burst.rate is {total:g}; keep it at most 0.9")
        return self
