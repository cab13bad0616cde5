"""Where events go: the raw-event store (Firehose -> S3, or Timestream) and New Relic."""

from consumer.sinks.base import Rejection, Sink, WriteResult
from consumer.sinks.firehose import FirehoseSink
from consumer.sinks.newrelic import NewRelicSink
from consumer.sinks.timestream import TimestreamSink

__all__ = ["FirehoseSink", "NewRelicSink", "Rejection", "Sink", "TimestreamSink", "WriteResult"]
