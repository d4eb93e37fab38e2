"""The persona registry: `prompts/registry.yaml` plus one prompt file per persona.

A persona is data. `MENTOR_PERSONAS_DIR` may name another folder with its own `registry.yaml` and
prompt files; its entries are added to (or override) the built-in ones, so a new persona needs no
code. Behaviours name lifecycle hooks (`agents/hooks.py`) and `composer` one of the grounded
composer's structures (`agents/composer/`); unknown names are rejected at load.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from agents.hooks import HOOKS
from agents.tools import TOOLS
from core.errors import ConfigError, NotFound

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "prompts"


def _known(names: list[str], registry: dict[str, Any], what: str) -> list[str]:
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(registry)}")
    return names


class UpfrontCall(BaseModel):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    when: str | None = Field(None, description="only when the question matches this regular expression (any case)")

    @field_validator("when")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def applies(self, question: str) -> bool:
        return self.when is None or re.search(self.when, question, re.I) is not None


class Generation(BaseModel):
    temperature: float = Field(0.4, ge=0, le=2)
    max_tokens: int = Field(400, ge=16, le=4096)
    max_tool_steps: int = Field(4, ge=0, le=10)
    # tool calls run per model round: identical ones (same tool, same arguments) are answered once, and
    # past this many the rest are dropped (a small model asked for one tool ten times, five of them the same)
    max_tool_calls: int = Field(4, ge=1, le=16)
    history_tokens: int = Field(1500, ge=0, le=100_000)


class Persona(BaseModel):
    id: str
    name: str
    role: str
    prompt: str
    fragments: list[str] = Field(default_factory=list)
    corpora: list[str] = Field(default_factory=list)
    retrieval_k: int = Field(4, ge=0, le=10)
    retrieval_filter: dict[str, Any] | None = None
    tools: list[str] = Field(default_factory=list)
    upfront: list[UpfrontCall] = Field(default_factory=list)
    behaviours: list[str] = Field(default_factory=list, description="lifecycle hooks, by name")
    composer: str = Field("advice", description="the grounded composer's structure for this persona")
    grounding: Literal["flag", "strict"] = "flag"
    examples: list[str] = Field(default_factory=list, max_length=6, description="questions an empty chat suggests")
    description: str = Field("", max_length=300, description="one sentence for the welcome screen")
    advice: bool = Field(False, description="its answers are advice a learner may implement (feedback asks)")
    anonymous: bool = False
    generation: Generation = Field(default_factory=Generation)
    folder: Path = BUILTIN_DIR

    @field_validator("upfront", mode="before")
    @classmethod
    def _names_to_calls(cls, value: Any) -> Any:
        return [{"tool": v} if isinstance(v, str) else v for v in (value or [])]

    @field_validator("behaviours")
    @classmethod
    def _known_behaviours(cls, value: list[str]) -> list[str]:
        return _known(value, HOOKS, "behaviours")

    @field_validator("composer")
    @classmethod
    def _known_composer(cls, value: str) -> str:
        from agents.composer.structures import STRUCTURES

        if value not in STRUCTURES:
            raise ValueError(f"unknown composer structure {value!r}; known: {sorted(STRUCTURES)}")
        return value

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        return _known(value, TOOLS, "tools")

    def read_prompt(self, name: str | None = None) -> str:
        path = self.folder / (name or self.prompt)
        if not path.exists():
            path = BUILTIN_DIR / (name or self.prompt)
        return _read(path)

    def system_prompt(self) -> str:
        parts = [self.read_prompt()]
        for fragment in self.fragments:
            parts.append(_fragment(self.folder, fragment))
        return "\n\n".join(parts)


def _read(path: Path) -> str:
    """A prompt file's text, read again only when the file changes (every turn builds a system prompt)."""
    return _read_version(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _read_version(path: Path, mtime_ns: int) -> str:
    return path.read_text().strip()


def _fragment(folder: Path, name: str) -> str:
    for base in (folder, BUILTIN_DIR):
        path = base / "fragments" / f"{name}.md"
        if path.exists():
            return _read(path)
    raise ConfigError(f"prompt fragment {name!r} not found in {folder}/fragments or {BUILTIN_DIR}/fragments")


def _load_dir(folder: Path) -> dict[str, Persona]:
    registry = folder / "registry.yaml"
    if not registry.exists():
        raise ConfigError(f"no registry.yaml in {folder}")
    try:
        entries = yaml.safe_load(registry.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{registry}: not valid YAML ({exc})") from None
    personas = {}
    for pid, entry in entries.items():
        try:
            persona = Persona.model_validate({"id": pid, "folder": folder, **entry})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise ConfigError(f"{registry}: persona {pid!r}: {where}: {first['msg']}") from None
        if not (folder / persona.prompt).exists():
            raise ConfigError(f"{registry}: persona {pid!r}: prompt file {persona.prompt} not found")
        personas[pid] = persona
    return personas


@lru_cache(maxsize=4)
def load_personas(extra_dir: str | None = None) -> dict[str, Persona]:
    personas = _load_dir(BUILTIN_DIR)
    if extra_dir:
        personas |= _load_dir(Path(extra_dir))
    return personas


def get_persona(persona_id: str) -> Persona:
    personas = load_personas(os.environ.get("MENTOR_PERSONAS_DIR") or None)
    if persona_id not in personas:
        raise NotFound(f"unknown persona {persona_id!r}; available: {', '.join(personas)}")
    return personas[persona_id]


def all_personas() -> dict[str, Persona]:
    return load_personas(os.environ.get("MENTOR_PERSONAS_DIR") or None)


def personas_without_tools(tools_supported: bool | None) -> dict[str, list[str]]:
    """Personas whose tools a model endpoint without tool support cannot call (None: cannot tell, assume it
    can); each keeps its up-front tools, which the runtime runs itself."""
    if tools_supported is not False:
        return {}
    return {p.id: list(p.tools) for p in all_personas().values() if p.tools}
