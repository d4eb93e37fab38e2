"""The demo site (MENTOR_DEMO=1): the widget's own host page at `/widget/demo`, registered first-party."""

from __future__ import annotations

import os

from core.settings import Settings
from server.auth import add_site
from store.db import Database


def demo_origins(settings: Settings) -> list[str]:
    """Where the demo widget page may be opened from: MENTOR_PUBLIC_URL, else this host and port."""
    if settings.public_url:
        return [settings.public_url.rstrip("/")]
    port = os.environ.get("MENTOR_PORT", "8000")
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


def ensure_demo_site(db: Database, origins: list[str]) -> str:
    """The demo site with exactly these origins (configuration, at start-up, as the owner)."""
    with db.admin() as conn:
        row = conn.execute("SELECT site_key FROM sites WHERE name = 'demo'").fetchone()
        if row is not None:
            conn.execute("UPDATE sites SET origins = %s WHERE name = 'demo'", (origins,))
            return row["site_key"]
    return add_site(db, "demo", origins, first_party=True)["site_key"]  # the service's own page
