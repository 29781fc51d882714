"""tracelens: where the time went and what failed, from ML inference traces and JSON logs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
