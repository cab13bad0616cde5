"""Response bodies of GET /metrics and GET /metrics/{repo} (they also feed /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "ChangeFailureRate",
    "DayPoint",
    "DeploymentFrequency",
    "DurationMetric",
    "MetricsOverview",
    "RepoMetrics",
]

LevelName = Literal["elite", "high", "medium", "low"]


class DeploymentFrequency(BaseModel):
    count: int = Field(description="deploy events in the window.")
    per_day: float = Field(description="count / window days.")
    level: LevelName


class DurationMetric(BaseModel):
    """Lead time for changes or failed-deployment recovery time."""

    samples: int = Field(description="Number of samples (deploy/push pairs, or failure/restore pairs).")
    median_s: float | None = Field(description="Median in seconds; null without samples.")
    p90_s: float | None = Field(description="90th percentile (nearest rank) in seconds.")
    level: LevelName | None


class ChangeFailureRate(BaseModel):
    failures: int
    deploys: int
    rate: float | None = Field(description="failures / deploys (0..1, capped at 1); null without deploys.")
    level: LevelName | None


class DayPoint(BaseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD.")
    deploys: int
    failures: int
    lead_time_samples: int
    lead_time_median_s: float | None = Field(description="Median lead time of the day's deploys.")
    recoveries: int
    recovery_time_median_s: float | None = Field(description="Median recovery time of the day's restores.")


class RepoMetrics(BaseModel):
    repo: str = Field(description="Repository, or ALL for every repository together.")
    window_days: int
    window_start: str = Field(description="First UTC day of the window.")
    window_end: str = Field(description="Last UTC day of the window (today).")
    deployment_frequency: DeploymentFrequency
    lead_time: DurationMetric
    change_failure_rate: ChangeFailureRate
    recovery_time: DurationMetric
    daily: list[DayPoint] = Field(description="One point per day of the window, oldest first.")


class MetricsOverview(BaseModel):
    generated_at: datetime
    window_days: int
    repos: list[RepoMetrics] = Field(description="ALL first, then every repository seen in the window.")
