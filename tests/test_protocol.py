"""The protocol document and the protocol's models say the same thing: every frame type the server can
send (server/protocol.py's ServerFrame) and every client frame is documented in docs/protocol.md, and the
document lists no frame the models do not know. (Every frame the other tests receive is validated against
ServerFrame as it arrives: tests/test_server.py's `recv`.)"""

from __future__ import annotations

import re
import typing

from server.protocol import CLIENT_TYPES, ServerFrame
from tests.conftest import REPO

DOC = (REPO / "docs" / "protocol.md").read_text()


def _table_types(heading: str) -> set[str]:
    section = DOC.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]  # its own table only
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {t for row in rows for t in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def _server_types() -> set[str]:
    union = typing.get_args(typing.get_args(ServerFrame)[0])
    return {typing.get_args(model.model_fields["type"].annotation)[0] for model in union}


def test_the_documents_server_frames_are_the_models_frames() -> None:
    documented = _table_types("## Server → client")
    # the inbox's and presence frames are described in their own sections
    handoff = set(re.findall(r'"type": "([a-z_]+)"', DOC.split("## Human handoff", 1)[1]))
    assert documented | handoff >= _server_types(), _server_types() - documented - handoff
    assert documented <= _server_types(), documented - _server_types()


def test_the_documents_client_frames_are_the_models_frames() -> None:
    assert _table_types("## Client → server") == set(CLIENT_TYPES)
