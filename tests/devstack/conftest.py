"""Fixtures of the devstack tests that run an emulator in this process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def fresh_moto() -> Iterator[None]:
    """This process's own moto backends, empty before and after (the session emulator is another process)."""
    from moto.core.base_backend import BackendDict

    BackendDict.reset()
    yield
    BackendDict.reset()
