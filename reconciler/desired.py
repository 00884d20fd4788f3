"""A stock as the files want it (pure): the validated stock and where it came from.

The loader produces these; the planner and the engine consume them without knowing how a file
is read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from reconciler.spec.stock import Stock


@dataclass(frozen=True)
class Summary:
    """What the cross-file checks need of a valid stock; small, so that validating a large
    tree does not hold every model in memory."""

    id: str
    file: str
    line: int
    spec_key: str
    """sha256 over merchant, kind and spec: equal keys mean identical stocks."""


@dataclass(frozen=True)
class DesiredStock:
    """A valid stock file as the planner takes it: the stock, and where it came from."""

    stock: Stock
    file: str
    line: int
    digest: str
    """sha256 of the file's bytes: a saved plan records it to notice edits."""

    def summary(self) -> Summary:
        key = f"{self.stock.merchant}\0{self.stock.kind}\0{self.stock.spec.model_dump_json()}"
        return Summary(
            self.stock.id, self.file, self.line, hashlib.sha256(key.encode()).hexdigest()
        )
