"""The ingestion gateway: authenticates and validates DevOps events and writes them to Kinesis."""

from producer.app import create_app
from producer.batcher import KinesisBatcher

__all__ = ["KinesisBatcher", "create_app"]
