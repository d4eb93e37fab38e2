"""JSON text for the hot paths (every streamed event is encoded twice: stored, then sent)."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """Like `json.dumps(value, default=str)` (Decimals, dates and the like become strings), ~5x faster."""
    return orjson.dumps(value, default=str, option=_OPTIONS).decode()
