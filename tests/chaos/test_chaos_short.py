"""The zero-loss experiment, short: the stack as separate processes, faults while 600 events flow.

Same code as ``bench/chaos/run.py`` (10,000 events): a gateway SIGTERM + restart, a consumer
SIGKILL with a batch in flight + restart, New Relic 500/429 bursts, Kinesis per-entry failures and
throttling, Timestream throttling, retryable rejections and an outage, poison records on the stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos.run import ChaosConfig, print_report, run

pytestmark = pytest.mark.timeout(150)


def test_no_accepted_event_is_lost_under_faults(emulator: str, tmp_path: Path) -> None:
    config = ChaosConfig(
        events=600, scripts=8, poison=4, repos=5, settle_timeout=45, log_dir=tmp_path, emulator_url=emulator
    )
    report = run(config)
    print_report(report)
    n = report.numbers
    # The faults really happened (otherwise a pass proves nothing).
    assert n["client"]["gateway_sigterm_exit"] == 0  # SIGTERM drained: clean exit
    assert n["client"]["consumer_killed_mid_batch"] == 1
    assert n["proxy_faults"]["put_records_entries_failed"] > 0
    assert n["proxy_faults"]["timestream_unavailable"] > 0
    assert n["newrelic_standin"]["injected_500"] > 0
    # 600, plus 10 "nudge" events when the consumer was idle at the kill (they are checked too)
    assert n["accepted"] == 600 + n["client"].get("nudge_events", 0)
    for check in report.checks:
        assert check.ok, f"{check.name}: {check.detail}"
    # One letter per poison record and application; a batch redelivered after the SIGKILL may
    # dead-letter its poison again (at least once), never a letter for a good record.
    assert n["dlq_not_poison"] == 0
    assert n["dlq_by_application"]["consumer"] >= 4
    assert n["dlq_by_application"]["aggregator"] >= 4
