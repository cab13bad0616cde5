"""The consumer: every event on the stream into Timestream and New Relic, under the KCL."""

from consumer.handler import Batch, BatchHandler, InRecord, Outcome
from consumer.processor import ConsumerProcessor
from consumer.runtime import ConsumerRuntime

__all__ = [
    "Batch",
    "BatchHandler",
    "ConsumerProcessor",
    "ConsumerRuntime",
    "InRecord",
    "Outcome",
    "checkpoint",
]
