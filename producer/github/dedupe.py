"""A bounded memory of recently accepted deliveries, to answer GitHub redeliveries without resending.

This is only a fast path: event ids derive from the payload (never from the delivery id), so a
redelivery this cache has forgotten (or one that reaches another gateway task) still dedupes in the
sinks.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DeliveryCache"]


class DeliveryCache:
    def __init__(self, max_size: int = 10_000) -> None:
        self._max_size = max_size
        self._entries: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, delivery_id: str) -> tuple[str, ...] | None:
        """The event ids an earlier copy of this delivery produced, or None."""
        event_ids = self._entries.get(delivery_id)
        if event_ids is not None:
            self._entries.move_to_end(delivery_id)
        return event_ids

    def remember(self, delivery_id: str, event_ids: tuple[str, ...]) -> None:
        if self._max_size <= 0:
            return
        self._entries[delivery_id] = event_ids
        self._entries.move_to_end(delivery_id)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
