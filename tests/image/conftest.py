"""`make image-test`: every test here builds or runs the container image (marker ``image``; `make test`
deselects them, see pyproject's addopts)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/image/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.image)
