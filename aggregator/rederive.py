"""Re-derive the stored day facts of every repository (or some) from its event log.

The aggregator re-derives the days a batch can change, so after an upgrade that changes a definition
(docs/aggregator.md) the days no new event touches keep the numbers of the old code. This command
derives them again with the running code, over the whole retention by default, and writes the days
that differ. It is safe beside running aggregators: every write is conditional on the log version it
was derived from (a newer derivation is never replaced), and re-deriving twice changes nothing.

    python -m aggregator.rederive                      # every repository, AGGREGATOR_RETENTION_DAYS
    python -m aggregator.rederive --repo org/api --days 90

Settings come from the environment, as for ``python -m aggregator`` (AGGREGATOR_STATE_TABLE,
DORA_PRODUCTION_ENVIRONMENTS, DORA_LOOKBACK_DAYS, endpoints from AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime, timedelta

from aggregator.app import build_aggregator
from devops_core.dora.model import day_of
from devops_core.events import REPO_ALL
from devops_core.logs import setup_logging
from devops_core.settings import Settings

__all__ = ["main"]

logger = logging.getLogger("aggregator.rederive")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 day")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m aggregator.rederive",
        description="Derive every repository's stored DORA day facts again from its event log with this "
        "code's definitions (after an upgrade that changed one), and write the days that differ. Safe "
        "beside running aggregators; running it twice changes nothing the second time.",
    )
    parser.add_argument(
        "--repo",
        action="append",
        metavar="NAME",
        help="only this repository (repeat for several; default: every repository the state table knows)",
    )
    parser.add_argument(
        "--days",
        type=_positive,
        help="re-derive the days from this many days ago to today (default: AGGREGATOR_RETENTION_DAYS)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level)
    aggregator = build_aggregator(settings)
    known = sorted(repo for repo in aggregator.store.repos() if repo != REPO_ALL)
    unknown = sorted(set(args.repo or ()) - set(known))
    if unknown:
        print(f"python -m aggregator.rederive: no events of {', '.join(unknown)} are stored", file=sys.stderr)
        return 2
    repos = sorted(set(args.repo)) if args.repo else known
    days = args.days or settings.aggregator_retention_days
    first_day = day_of(datetime.now(UTC) - timedelta(days=days - 1))
    started = time.monotonic()
    derived = changed = 0
    for index, repo in enumerate(repos, start=1):
        repo_days, repo_changed = aggregator.recompute(repo, first_day)
        derived += repo_days
        changed += repo_changed
        logger.info(
            "repository re-derived",
            extra={
                "repo": repo,
                "progress": f"{index}/{len(repos)}",
                "days": repo_days,
                "changed": repo_changed,
            },
        )
    logger.info(
        "re-derivation done",
        extra={
            "repos": len(repos),
            "first_day": first_day.isoformat(),
            "days_derived": derived,
            "days_changed": changed,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
