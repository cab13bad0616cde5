"""The KCLProcess side: the program the MultiLangDaemon starts once per shard lease.

stdin/stdout carry the daemon's JSON line protocol, so logs go to stderr only.
``python -m consumer.kcl_app`` is the ``executableName`` in the daemon's properties.
"""

from __future__ import annotations

import sys

from consumer.runtime import ConsumerRuntime
from devops_core.kcl.daemon import run_processor
from devops_core.logs import setup_logging
from devops_core.settings import Settings


def main() -> int:
    settings = Settings()
    setup_logging(settings.log_level, stream=sys.stderr)  # before the runtime logs "sink on/off"
    runtime = ConsumerRuntime(settings).start()
    try:
        # A signal ends the backoff of a batch that cannot be delivered (no checkpoint for it), so the
        # daemon's shutdownRequested is answered within its grace period.
        run_processor(runtime.new_processor(), log_level=settings.log_level, on_signal=runtime.stopping.set)
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
