"""Where events go: the raw-event store (Timestream) and New Relic."""

from consumer.sinks.base import Rejection, Sink, WriteResult
from consumer.sinks.newrelic import NewRelicSink
from consumer.sinks.timestream import TimestreamSink

__all__ = ["NewRelicSink", "Rejection", "Sink", "TimestreamSink", "WriteResult"]
