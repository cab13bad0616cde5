"""Background workers that ``make run`` starts beside the gateway (consumer, aggregator).

Each worker registers here; it can add its own command-line options and is started after the
resources exist and stopped (checkpointing) before the emulator goes away.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from devops_core.settings import Settings

__all__ = ["WORKERS", "Worker"]


class Worker(Protocol):
    name: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def enabled(self, args: argparse.Namespace) -> bool: ...

    async def start(self, args: argparse.Namespace, settings: Settings) -> None: ...

    async def stop(self) -> None: ...


WORKERS: list[Worker] = []
