"""Where errors originate: an error on a span none of whose descendants errs originated there.

An error on a span with an erroring descendant was propagated (a caller reporting its callee's
failure). Every ancestor of an erroring span is marked with the tree's jump tables (pointer
doubling, O(log depth) scatters), so no subtree is walked span by span.
"""

from __future__ import annotations

import polars as pl

from ml_tracelens.core.tree import Tree


def error_flags(tree: Tree) -> tuple[pl.Series, pl.Series]:
    """``has_error`` (status is error) and ``error_originated`` per span, in row order."""
    has_error = (tree.frame.get_column("status").cast(pl.String) == "error").fill_null(False)
    erroring_below = tree.mark_ancestors(has_error)
    return has_error.rename("has_error"), (has_error & ~erroring_below).rename("error_originated")
