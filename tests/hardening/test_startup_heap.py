"""Both gateway entry points freeze their start-up heap once it is ready (devops_core/startup_heap.py).
Without it, full collections walked the gateway's ~134,000 start-up objects about every half second
under load: a fifth of its CPU on POST /events (docs/performance.md, step four)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hardening.conftest import start_gateway_process

# A gateway process freezes about 134,000 objects; one that never froze reports none.
AT_LEAST_FROZEN = 40_000


def _logged(log: Path, message: str) -> dict[str, object]:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and json.loads(line).get("msg") == message:
            return dict(json.loads(line))
    raise AssertionError(f"no {message!r} line in:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.parametrize(
    ("module", "ready_line"), [("producer", "gateway listening"), ("producer.multiworker", "worker ready")]
)
def test_the_gateway_freezes_its_heap_after_its_clients_exist(
    emulator: str, tmp_path: Path, module: str, ready_line: str
) -> None:
    gateway = start_gateway_process(tmp_path / "gateway.log", module=module)
    try:
        frozen = _logged(gateway.log, ready_line)["startup_objects_frozen"]
        assert isinstance(frozen, int)
        assert frozen >= AT_LEAST_FROZEN
    finally:
        gateway.process.terminate()
        gateway.process.wait(20)
