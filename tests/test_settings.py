from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import load_settings


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("MENTOR_DB_POOL_MAX", "lots", "MENTOR_DB_POOL_MAX"),
        ("MENTOR_DB_POOL_MIN", "64", "MENTOR_DB_POOL_MAX"),
        ("MENTOR_TURN_SETUP_SLOTS", "0", "MENTOR_TURN_SETUP_SLOTS"),
        ("DATABASE_URL", "mysql://localhost/db", "postgresql://"),
        ("MENTOR_CHUNK_TOKENS", "10", "MENTOR_CHUNK_TOKENS"),
        ("MENTOR_CHUNK_OVERLAP", "5000", "MENTOR_CHUNK_OVERLAP"),
    ],
)
def test_bad_values_give_one_readable_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message and fragment in message.upper() if fragment.isupper() else fragment in message


def test_mentor_home_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTOR_HOME", "~/mentor-x")
    settings = load_settings()
    assert "~" not in str(settings.mentor_home)
    assert settings.pgdata == settings.mentor_home / "pgdata"
