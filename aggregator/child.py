"""One record-processor process under the KCL MultiLangDaemon (``python -m aggregator.child``).

The daemon starts one of these per shard lease and speaks its JSON-lines protocol on stdin/stdout;
logs go to stderr. Each child also runs the periodic emitter; a claim item in the state table lets
only one process (of all children, of all tasks) emit per period.
"""

from __future__ import annotations

from aggregator.app import PeriodicEmitter, build_processor
from aggregator.application import AggregatorApplication
from devops_core.kcl.daemon import run_processor
from devops_core.settings import Settings


def main() -> None:
    settings = Settings()
    processor = build_processor(settings)
    application = processor.application
    assert isinstance(application, AggregatorApplication)
    periodic = PeriodicEmitter(application.aggregator, settings.aggregator_emit_interval_seconds)
    periodic.start()
    try:
        run_processor(processor, log_level=settings.log_level, on_signal=processor.stop)
    finally:
        periodic.stop()


if __name__ == "__main__":
    main()
