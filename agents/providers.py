"""Which answerer a deployment uses, from configuration: an OpenAI-compatible endpoint if one is set, else
the grounded composer (no model at all); the local SmolLM2 only when asked for (`MENTOR_LLM=local`), since
it invents figures. Wiring only: the providers themselves live in agents/llm.py and agents/composer/."""

from __future__ import annotations

from functools import lru_cache

from agents.composer import COMPOSER, GroundedComposer
from agents.llm import ChatProvider, LocalProvider, OpenAICompatibleProvider
from core.errors import ConfigError
from core.settings import Settings, get_settings

Answerer = ChatProvider | GroundedComposer  # what answers a turn: a model, or the composer


@lru_cache(maxsize=1)
def _local() -> LocalProvider:
    return LocalProvider()


def get_provider(settings: Settings | None = None) -> Answerer:
    """The configured backend (see the module's docstring)."""
    settings = settings or get_settings()
    configured = bool(settings.openai_base_url or settings.openai_api_key)
    if settings.llm_backend == "openai" or (settings.llm_backend == "auto" and configured):
        if not configured:
            raise ConfigError("MENTOR_LLM=openai needs OPENAI_BASE_URL or OPENAI_API_KEY")
        return OpenAICompatibleProvider(settings)
    if settings.llm_backend == "local":
        return _local()
    return COMPOSER
