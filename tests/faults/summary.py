"""One line of figures per scenario: what was done to the system and what came out.

`figures` are the asserted ones (`Scenario.expect`): each is a value, an operator and
the bound the test held it to. Only those go into docs/reliability.md.
"""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass, field
from typing import Any

OPS = {"==": operator.eq, "<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Figure:
    label: str
    value: float
    op: str
    bound: float

    def holds(self) -> bool:
        return OPS[self.op](self.value, self.bound)

    def text(self) -> str:
        value = f"{self.value:g}" if isinstance(self.value, int | float) else str(self.value)
        if self.op == "==":
            return f"{self.label} {value}"
        return f"{self.label} {value} (asserted {self.op} {self.bound:g})"


@dataclass
class Summary:
    scenario: str
    seed: int = 0
    messages: int = 0
    kills: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    interrupted: int = 0
    outbox_lines: int = 0
    duplicates: int = 0
    lost: int = 0
    early: int = 0
    max_late_seconds: float = 0.0
    outage_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        kills = ", ".join(f"{k}={v}" for k, v in sorted(self.kills.items())) or "none"
        statuses = ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items()))
        outages = "/".join(f"{s:.1f}" for s in self.outage_seconds) or "-"
        text = (
            f"{self.scenario}: kills[{kills}] messages={self.messages} [{statuses}] "
            f"interrupted={self.interrupted} outbox={self.outbox_lines} "
            f"duplicates={self.duplicates} lost={self.lost} early={self.early} "
            f"max_late={self.max_late_seconds:.2f}s outage_s={outages} "
            f"wall={self.wall_seconds:.0f}s seed={self.seed}"
        )
        return text + "".join(f"\n    {note}" for note in self.notes)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Summary:
        data: dict[str, Any] = json.loads(text)
        data["figures"] = [Figure(**f) for f in data.get("figures", [])]
        return cls(**data)
