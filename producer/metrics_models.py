"""Response bodies of GET /metrics, GET /metrics/{repo} and GET /deployments/{repo} (they also feed
/openapi.json). The numbers come from devops_core.dora; docs/aggregator.md defines each one."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "ChangeFailureRate",
    "ChangeRow",
    "DayPoint",
    "DeploymentFrequency",
    "DeploymentRow",
    "DurationMetric",
    "FailureRow",
    "MetricsOverview",
    "RecoveryTime",
    "RepoActivity",
    "RepoMetrics",
    "ReworkRate",
    "Trend",
]

LevelName = Literal["elite", "high", "medium", "low"]


class Trend(BaseModel):
    """The metric's headline value in the window just before this one, and how it moved."""

    previous: float | None = Field(description="The value over the previous window of the same length.")
    change: float | None = Field(
        description="Relative change (0.25 = +25 %); null when either value is missing or the previous is 0."
    )
    direction: Literal["better", "worse", "same"] | None = Field(
        description="Whether the move is an improvement for this metric (fewer failures, more deploys...)."
    )


class DeploymentFrequency(BaseModel):
    count: int = Field(description="Production deployments in the window, whatever their outcome.")
    per_day: float = Field(description="count / window days.")
    failed: int = Field(description="Of which the outcome was failure.")
    other_environments: int = Field(
        description="Deployments to environments that do not count (not in count)."
    )
    level: LevelName | None = Field(description="DORA level; null without any deployment.")
    trend: Trend


class DurationMetric(BaseModel):
    samples: int = Field(description="Number of samples (changes shipped, or failures ended).")
    median_s: float | None = Field(description="Median in seconds; null without samples.")
    p90_s: float | None = Field(description="90th percentile (nearest rank) in seconds.")
    level: LevelName | None
    trend: Trend


class RecoveryTime(DurationMetric):
    open_failures: int | None = Field(description="Production failures open now.")


class ChangeFailureRate(BaseModel):
    failures: int = Field(description="Deployments that failed or caused an incident.")
    deploys: int
    rate: float | None = Field(description="failures / deploys (0..1); null without deploys.")
    level: LevelName | None
    trend: Trend


class ReworkRate(BaseModel):
    rework: int = Field(description="Deployments that were unplanned remediation (hotfix, rollback, fix).")
    deploys: int
    rate: float | None = Field(description="rework / deploys (0..1); null without deploys.")
    level: None = Field(description="DORA publishes no performance bands for rework rate.")
    trend: Trend


class DayPoint(BaseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD.")
    deploys: int
    failed_deploys: int
    change_failures: int
    rework: int
    lead_time_samples: int
    lead_time_median_s: float | None = Field(description="Median lead time of the changes shipped that day.")
    recoveries: int
    recovery_time_median_s: float | None = Field(description="Median recovery time of the failures ended.")


class RepoMetrics(BaseModel):
    repo: str = Field(description="The scope's name: a repository, a team, a service, or ALL.")
    scope: Literal["all", "repo", "team", "service"]
    window_days: int
    window_start: str = Field(description="First UTC day of the window.")
    window_end: str = Field(description="Last UTC day of the window (today).")
    deployment_frequency: DeploymentFrequency
    lead_time: DurationMetric
    change_failure_rate: ChangeFailureRate
    recovery_time: RecoveryTime
    rework_rate: ReworkRate
    daily: list[DayPoint] = Field(description="One point per day of the window, oldest first.")


class MetricsOverview(BaseModel):
    generated_at: datetime
    window_days: int
    scope: Literal["all", "team", "service"] = Field(description="What the overview is filtered to.")
    name: str = Field(description="ALL, or the team or service of the filter.")
    repos: list[RepoMetrics] = Field(
        description="The filter's own metrics first (ALL, the team or the service), then every repository "
        "with events in the window (of the team or service, when filtered)."
    )
    teams: list[str] = Field(description="Every team known (mapping file and events), for filters.")
    services: list[str] = Field(description="Every service events named, for filters.")


class ChangeRow(BaseModel):
    sha: str
    lead_time_s: float


class DeploymentRow(BaseModel):
    event_id: str
    time: datetime
    environment: str
    counted: bool = Field(description="A production deployment (the others are shown, not counted).")
    outcome: Literal["success", "failure"]
    sha: str | None
    change_failure: bool
    rework: bool
    changes: list[ChangeRow] = Field(
        description="Changes this deployment shipped first, with their lead time."
    )


class FailureRow(BaseModel):
    kind: Literal["deployment", "incident"]
    event_id: str
    started: datetime
    ended: datetime | None
    recovery_s: float | None
    environment: str


class RepoActivity(BaseModel):
    repo: str
    window_days: int
    deployments: list[DeploymentRow] = Field(description="Newest first.")
    failures: list[FailureRow] = Field(
        description="Production failures that started in the window, newest first."
    )
