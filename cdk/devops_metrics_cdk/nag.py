"""Acknowledging a cdk-nag finding where it occurs, always with the reason it is acceptable."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

__all__ = ["acknowledge"]


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """``rule``: a cdk-nag id, plus the finding for rules with several: ``AwsSolutions-IAM5[Resource::*]``."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
