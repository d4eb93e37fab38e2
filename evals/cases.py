"""Eval sets as data: one YAML file per persona in `evals/sets/`, validated on load.

A case names the question, the demo user (by handle; none = anonymous visitor), and what a good
answer must show: expected source chunks (a `source#anchor` prefix), expected tool calls, facts that
must appear exactly in the events, strings that must not appear (other users' data), and, for
support, whether the turn should escalate to a person.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InvalidArgument

SETS_DIR = Path(__file__).resolve().parent / "sets"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fact(Strict):
    """`tool` + `field` + `value`: a tool result holds this value under this key (numbers to the cent);
    `text`: the string appears verbatim in the events (citation snippets or tool data)."""

    tool: str | None = None
    field: str | None = None
    value: float | str | bool | None = None
    text: str | None = None
    answer: bool = Field(True, description="false: the fact must reach the events, but a good answer need not "
                                           "state it (a role-played client does not quote market medians)")

    @model_validator(mode="after")
    def _one_form(self) -> Fact:
        structured = self.tool is not None and self.field is not None and self.value is not None
        if structured == (self.text is not None):
            raise ValueError("a fact is either {tool, field, value} or {text}")
        return self

    def label(self) -> str:
        return self.text if self.text is not None else f"{self.tool}.{self.field}={self.value}"


class Expect(Strict):
    sources: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list)
    escalate: bool | None = None
    error: str | None = Field(None, description="the typed error code this turn must end with (bad input cases)")


class Case(Strict):
    id: str = Field(min_length=1, max_length=80)
    question: str = Field(min_length=1, max_length=4000)
    user: str | None = None
    project: int | None = Field(None, gt=0)
    mode: Literal["chat", "simulate_client"] = "chat"
    expect: Expect = Field(default_factory=Expect)


class EvalSet(Strict):
    persona: str
    refs: dict[str, Any] = Field(default_factory=dict, description="YAML anchors shared by cases; not read")
    cases: list[Case] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> EvalSet:
        ids = [c.id for c in self.cases]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate case ids: {', '.join(dupes)}")
        return self


def load_sets(directory: Path = SETS_DIR, personas: list[str] | None = None) -> list[EvalSet]:
    """Every `*.yaml` eval set (optionally only some personas); a broken file is one typed error."""
    sets = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            loaded = EvalSet.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            raise InvalidArgument(f"eval set {path.name} is invalid: {str(exc).splitlines()[0]}") from None
        if personas is None or loaded.persona in personas:
            sets.append(loaded)
    if personas:
        missing = set(personas) - {s.persona for s in sets}
        if missing:
            raise InvalidArgument(f"no eval set for persona {', '.join(sorted(missing))} in {directory}")
    return sets
