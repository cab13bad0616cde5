"""The KCL runtime shared by the consumer and the aggregator.

- :class:`LocalKclDriver`: runs amazon_kclpy v3 record processors in-process (boto3, no Java), with
  checkpoints in the KCL's DynamoDB lease table; for ``make run`` and tests.
- :func:`checkpoint`: the one checkpoint helper with bounded retries, for processors.
- ``devops_core.kcl.daemon``: the production driver (the KCL MultiLangDaemon, Java), imported on demand.
"""

from devops_core.kcl.checkpointing import checkpoint
from devops_core.kcl.local_driver import LocalCheckpointer, LocalKclDriver, ShardStatus

__all__ = ["LocalCheckpointer", "LocalKclDriver", "ShardStatus", "checkpoint"]
