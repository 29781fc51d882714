"""What the cache tests share: the dump they cache, and its entry's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_tracelens.ingest import cache, pipeline


@pytest.fixture
def dump(otel_demo_dump: Path) -> Path:
    return otel_demo_dump


def entry_key(dump: Path) -> str:
    """The cache key of ``dump`` read with the default options."""
    key = cache.cache_key([str(dump)], input_format=None, options=pipeline.ReadOptions())
    assert key is not None
    return key
