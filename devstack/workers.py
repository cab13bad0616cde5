"""Background workers that ``make run`` starts beside the gateway (consumer, aggregator).

Each worker can add its own command-line options; it is started after the resources exist and
stopped (checkpointing) after the gateway has drained and before the emulator goes away.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from devops_core.settings import Settings

__all__ = ["Worker", "all_workers"]


class Worker(Protocol):
    name: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def enabled(self, args: argparse.Namespace) -> bool: ...

    async def start(self, args: argparse.Namespace, settings: Settings) -> None: ...

    async def stop(self) -> None: ...


def all_workers() -> list[Worker]:
    """Imported lazily so that the gateway alone never pulls in worker code."""
    workers: list[Worker] = []
    # Each worker package appends its own line here, e.g.:
    #   from consumer.local import ConsumerWorker; workers.append(ConsumerWorker())
    from aggregator.local import AggregatorWorker
    from consumer.local import ConsumerWorker

    # The consumer first: workers stop in reverse order, so the aggregator's last emits still get stored.
    workers.append(ConsumerWorker())
    workers.append(AggregatorWorker())
    return workers
