"""Secrets: the gateway's shared token (generated here) and the New Relic key (created by the operator)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from devops_metrics_cdk.nag import acknowledge

__all__ = ["PipelineSecrets"]


class PipelineSecrets(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        new_relic_secret_arn: str | None,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # {"token": "<40 random characters>"}: the format the gateway's TokenStore parses; on rotation
        # the gateway accepts AWSCURRENT and AWSPREVIOUS, so clients can move over without downtime.
        # No secret name (CloudFormation makes one up): a failed first deploy retains the secret, and a
        # fixed name would make the retry fail. The gateway gets the ARN (SECRET_STORE_NAME accepts it).
        self.token = secretsmanager.Secret(
            self,
            "Token",
            description="Shared token CI jobs present to the devops-metrics gateway (Authorization: Bearer).",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106 (an empty JSON object)
                generate_string_key="token",
                exclude_punctuation=True,
                password_length=40,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.token,
            "AwsSolutions-SMG4",
            "The token is shared with CI systems outside AWS, so a rotation Lambda could not update "
            "them; it is rotated by hand (docs/deploy.md) and the gateway accepts the previous version "
            "meanwhile.",
        )
        # The license key comes from New Relic, so it cannot be generated here: the operator stores it
        # once and passes the secret's complete ARN as context (a name, as from_secret_name_v2 takes,
        # gives the task definition a partial ARN that the execution role's grant does not match).
        self.new_relic_key: secretsmanager.ISecret | None = (
            secretsmanager.Secret.from_secret_complete_arn(self, "NewRelicKey", new_relic_secret_arn)
            if new_relic_secret_arn
            else None
        )
