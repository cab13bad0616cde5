"""docker-compose.localstack.yml, checked by a real compose parser (Debian's docker-compose; no engine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.localstack.yml"
APP_SERVICES = ("gateway", "consumer", "aggregator")


LOCALSTACK_TOKEN = "test-token"  # a placeholder: `config` never contacts LocalStack


def _compose(*args: str, token: str | None = LOCALSTACK_TOKEN) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (.ci/run installs Debian's package)"
    env = {key: value for key, value in os.environ.items() if key != "LOCALSTACK_AUTH_TOKEN"}
    if token is not None:
        env["LOCALSTACK_AUTH_TOKEN"] = token
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    quiet = _compose("config", "-q")
    assert quiet.returncode == 0, quiet.stderr
    resolved = _compose("config")
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)


def test_auth_token_is_required() -> None:
    result = _compose("config", "-q", token=None)
    assert result.returncode != 0
    assert "LOCALSTACK_AUTH_TOKEN" in result.stderr


def test_localstack_services(config: dict) -> None:
    localstack = config["services"]["localstack"]
    # a calendar version (LocalStack's scheme since 2026), never the frozen `:4` line or `latest`
    image, _, tag = localstack["image"].partition(":")
    assert image == "localstack/localstack"
    assert re.fullmatch(r"20\d\d\.\d{2}(\.\d+)?", tag), tag
    enabled = set(localstack["environment"]["SERVICES"].split(","))
    assert enabled == {"kinesis", "dynamodb", "secretsmanager", "cloudwatch", "sqs", "firehose", "s3"}
    assert localstack["environment"]["LOCALSTACK_AUTH_TOKEN"] == LOCALSTACK_TOKEN
    assert "healthcheck" in localstack


def test_timestream_goes_to_moto(config: dict) -> None:
    assert config["services"]["timestream"]["image"].startswith("motoserver/moto:")
    for name in ("init", *APP_SERVICES):
        environment = config["services"][name]["environment"]
        assert environment["AWS_ENDPOINT_URL"] == "http://localstack:4566"
        assert environment["AWS_ENDPOINT_URL_TIMESTREAM_WRITE"] == "http://timestream:5000"
        assert environment["AWS_ENDPOINT_URL_TIMESTREAM_QUERY"] == "http://timestream:5000"


def test_init_provisions_before_the_apps_start(config: dict) -> None:
    init = config["services"]["init"]
    assert init["command"][0] == "provision"
    assert init["depends_on"]["localstack"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        service = config["services"][name]
        assert service["command"] == [name]
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert service["image"] == init["image"]  # one image...
        assert Path(service["build"]["context"]) == ROOT  # ...built from the repository's Dockerfile


def test_services_share_the_pipeline_names(config: dict) -> None:
    names = ("DEVOPS_STREAM_NAME", "SECRET_STORE_NAME", "DEAD_LETTER_QUEUE_NAME", "AGGREGATOR_STATE_TABLE")
    values = {tuple(config["services"][name]["environment"][key] for key in names) for name in APP_SERVICES}
    assert len(values) == 1
    assert config["services"]["consumer"]["environment"]["DEVOPS_DB_NAME"] == "DORAStats"
    assert config["services"]["consumer"]["environment"]["RAW_STORE"] == "s3"  # the default store
    # the gateway is published on loopback only
    assert [str(port) for port in config["services"]["gateway"]["ports"]] == ["127.0.0.1:8000:8000/tcp"]
