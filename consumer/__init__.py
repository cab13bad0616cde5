"""The consumer: every event on the stream into the raw-event store and New Relic, under the KCL."""

from consumer.application import ConsumerApplication, ConsumerJob
from consumer.runtime import ConsumerRuntime

__all__ = ["ConsumerApplication", "ConsumerJob", "ConsumerRuntime"]
