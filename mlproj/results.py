"""What one run gives back to its caller (the command, a sweep, the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunResult:
    run_id: str
    experiment: str
    tracking_uri: str
    metrics: dict[str, float]
    model_uri: str | None
    task: str
    extra: dict[str, Any] = field(default_factory=dict)
