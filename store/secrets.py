"""Secrets kept in files under MENTOR_HOME: created 0600 in one step, never widened afterwards."""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

from core.errors import ConfigError


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The secret in `path`, generating it on first use.

    The file is created with O_EXCL and mode 0600 in a single call, so there is no moment at which
    another user could read it; a secret file readable by group or others is refused, not trusted.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"{path} is readable by other users (mode {mode:o}); run chmod 600 {path}") from None
        value = path.read_text(encoding="utf-8").strip()
        for _ in range(40):  # another process (a worker starting alongside) may have created it this instant
            if value:
                return value
            time.sleep(0.05)
            value = path.read_text(encoding="utf-8").strip()
        raise ConfigError(f"{path} is empty; delete it to generate a new secret") from None
    value = secrets.token_urlsafe(nbytes)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return value
