"""What HAProxy (deploy/haproxy.cfg, run with `-db`) said about its workers, for the scale-out test and
the burst benchmark: a worker it marks down has every socket it served cut."""

from __future__ import annotations

from pathlib import Path


def marked_down(haproxy_log: Path) -> list[str]:
    """Its "Server workers/wN is DOWN, reason: ..." lines, in order, as "wN: reason"."""
    lines = haproxy_log.read_text().splitlines() if haproxy_log.exists() else []
    return [line.split("workers/")[1].split(", check duration")[0].replace(" is DOWN, reason", "")
            for line in lines if " is DOWN" in line]
