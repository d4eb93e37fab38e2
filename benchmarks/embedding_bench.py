"""CPU per embedded question: torch against ONNX Runtime, one thread, by batch size.

The server embeds questions in a child process under ONNX Runtime (retrieval/embedder.py); this shows
why, and that the vectors are the same (cosine to torch's). Questions are the burst benchmark's. Then
questions of mixed length (the held-out and eval sets' own questions): a batch of 32 padded to its
longest against the same batch sorted by length and encoded in groups (`QUERY_GROUP`), as the
embedding process does.

    .venv/bin/python benchmarks/embedding_bench.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.burst_bench import questions  # noqa: E402
from retrieval.embedder import QUERY_GROUP, _load_model, _onnx_encoder  # noqa: E402


def cpu_ms_per_question(encode, texts: list[str], batch: int) -> float:
    encode(texts[:batch], batch)  # warm-up
    started = time.process_time()
    for i in range(0, len(texts), batch):
        encode(texts[i:i + batch], batch)
    return round((time.process_time() - started) / len(texts) * 1000, 2)


def written_questions() -> list[str]:
    """Every `question:` of the held-out and eval sets: people's wording, 4-26 tokens long."""
    import yaml

    found: list[str] = []
    for path in sorted((ROOT / "evals").glob("*/*.yaml")):
        found += [case["question"] for case in (yaml.safe_load(path.read_text()) or {}).get("cases", [])
                  if isinstance(case, dict) and isinstance(case.get("question"), str)]
    return found


def grouped_ms_per_question(encode, texts: list[str], batch: int, group: int) -> float:
    """Batches of `batch` in arrival order, each sorted by length and encoded `group` at a time."""
    return cpu_ms_per_question(lambda chunk, _: encode(sorted(chunk, key=len), group), texts, batch)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    texts = questions(300)
    model = _load_model()

    def torch_encode(batch_texts: list[str], batch: int) -> np.ndarray:
        return model.encode(batch_texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)

    with tempfile.TemporaryDirectory() as folder:
        onnx_encode = _onnx_encoder(Path(folder), threads=1)
        if onnx_encode is None:
            raise SystemExit("onnxruntime is not installed")
        result = {"questions": len(texts), "threads": 1, "cpu_ms_per_question": {}}
        for batch in (1, 16, 64):
            result["cpu_ms_per_question"][f"batch_{batch}"] = {
                "torch": cpu_ms_per_question(torch_encode, texts, batch),
                "onnxruntime": cpu_ms_per_question(onnx_encode, texts, batch)}
        mixed = (written_questions() * 3)[:300]
        result["mixed_length_questions"] = {
            "questions": len(mixed), "batch": 32,
            "onnx_ms_one_padded_batch": cpu_ms_per_question(onnx_encode, mixed, 32),
            f"onnx_ms_sorted_groups_of_{QUERY_GROUP}": grouped_ms_per_question(onnx_encode, mixed, 32, QUERY_GROUP)}
        padded, grouped = onnx_encode(mixed[:32], 32), onnx_encode(mixed[:32], QUERY_GROUP)
        result["mixed_length_questions"]["min_cosine_grouped_vs_padded"] = round(
            float((padded * grouped).sum(1).min()), 7)
        reference, ours = torch_encode(texts, 64), onnx_encode(texts, 64)
        result["min_cosine_onnx_vs_torch"] = round(float((reference * ours).sum(1).min()), 7)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
