"""Where events go: Timestream, New Relic, and the dead-letter queue for what can never succeed."""

from consumer.sinks.base import Rejection, Sink, WriteResult
from consumer.sinks.dead_letter import DeadLetter, DeadLetterSink
from consumer.sinks.newrelic import NewRelicSink
from consumer.sinks.timestream import TimestreamSink

__all__ = [
    "DeadLetter",
    "DeadLetterSink",
    "NewRelicSink",
    "Rejection",
    "Sink",
    "TimestreamSink",
    "WriteResult",
]
