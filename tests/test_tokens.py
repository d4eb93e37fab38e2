"""tiktoken's standard cl100k_base, offline, from the bpe-openai wheel's rank file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.errors import ConfigError
from retrieval import tokens


def test_cl100k_base_loads_offline_from_the_installed_rank_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    target = tokens.install_rank_file("cl100k_base")
    url, expected = tokens.RANK_FILES["cl100k_base"]
    assert target.name == hashlib.sha1(url.encode()).hexdigest() == "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == expected
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base")
    assert len(enc.encode("Four words right here.")) == 5


def test_a_corrupted_cache_file_is_replaced_and_a_bad_source_refused(tmp_path: Path, monkeypatch) -> None:
    target = tokens.install_rank_file("cl100k_base", tmp_path)
    target.write_bytes(b"tampered")
    tokens.install_rank_file("cl100k_base", tmp_path)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == tokens.RANK_FILES["cl100k_base"][1]
    fake = tmp_path / "fake"
    (fake / "data").mkdir(parents=True)
    import gzip

    (fake / "data" / "o200k_base.tiktoken.gz").write_bytes(gzip.compress(b"not the real ranks"))
    monkeypatch.setattr(tokens, "_bpe_openai_data", lambda: fake / "data")
    with pytest.raises(ConfigError, match="does not match"):
        tokens.install_rank_file("o200k_base", tmp_path / "other")
