"""The embedder: quality against a numpy fp32 reference, determinism, semantics, pinning, caching.

The int8 model is built once per session (fixture `embedder_cache`, tests/fx_model.py); the one
test that must rebuild it (a corrupt cached model) works on a copy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from deadzone_build.embed import model_files
from deadzone_build.cli import main
from deadzone_build.embed.embedder import (MANIFEST_FILE, Embedder, _calibration_texts,
                                     ensure_model, model_is_current, model_path)
from deadzone_build.errors import EmbedderError
from deadzone_build.embed.onnx_bert import BertShape, build_bert_graph, load_weights
from deadzone_build.embed.pin import EMBEDDER_PIN, MAX_SEQ_LENGTH, pin_id
from fx_model import docs_chunks, docs_paragraphs, fit_window
from numpy_bert import reference_vectors

# (how many, smallest, largest word pieces): mostly short paragraphs, a few up to the full window,
# about 3,800 word pieces in all so the numpy reference stays a few seconds.
LENGTH_QUOTAS = [(30, 3, 40), (18, 41, 100), (8, 101, 180), (4, 181, 10**6)]


@pytest.fixture(scope="module")
def weights(embedder_cache) -> dict[str, np.ndarray]:
    return load_weights(model_files.files_dir(embedder_cache) / "model.safetensors")


@pytest.fixture(scope="module")
def reference_chunks() -> list[str]:
    """~60 doc paragraphs of varying length, in mirror order, each cut to the 256-piece window."""
    counter = model_files.count_tokens.tokenizer
    left = [quota for quota, _, _ in LENGTH_QUOTAS]
    picked: list[str] = []
    for paragraph in docs_paragraphs():
        n = len(counter.encode(paragraph).ids)
        for slot, (_, low, high) in enumerate(LENGTH_QUOTAS):
            if low <= n <= high and left[slot]:
                left[slot] -= 1
                picked.append(fit_window(paragraph))
                break
        if not any(left):
            return picked
    raise AssertionError(f"the docs mirror lacks paragraphs for the quotas {LENGTH_QUOTAS} (left: {left})")


def _ids(texts: list[str]) -> list[list[int]]:
    return [e.ids for e in model_files.tokenizer(truncate=True).encode_batch(texts)]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# -- quality -----------------------------------------------------------------------------------


def test_every_doc_chunk_is_close_to_the_numpy_fp32_reference(embedder, weights, reference_chunks):
    ids = _ids(reference_chunks)
    assert max(map(len, ids)) == 256 and min(map(len, ids)) < 16  # the whole range of lengths
    with threadpool_limits(1):  # BLAS threads fighting over 2 cores make this 4x slower
        reference = reference_vectors(ids, weights)
    cosines = _cosines(embedder.embed(reference_chunks), reference)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.99, f"chunk {worst} ({len(ids[worst])} pieces): {reference_chunks[worst][:80]!r}"
    assert cosines.mean() >= 0.995


def test_fp32_graph_matches_the_numpy_reference(weights, reference_chunks):
    """The graph builder alone (before fusion and quantisation) is exact to float32 rounding."""
    import onnxruntime as ort

    model = build_bert_graph(weights, BertShape.from_pin(EMBEDDER_PIN["architecture"]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    texts = reference_chunks[::12]
    got = np.stack([session.run(None, {"input_ids": np.array([ids])})[0][0].mean(0) for ids in _ids(texts)])
    with threadpool_limits(1):
        want = reference_vectors(_ids(texts), weights)
    assert _cosines(got, want).min() > 0.99999


def test_fusion_needs_no_sympy_and_gives_the_same_graph(weights, model_files_cache):
    """sympy (~80 MB) is not a dependency: the optimizer's symbolic shape inference is off, and a
    process that cannot import sympy fuses the very same bytes as this one (which may have it)."""
    from conftest import REPO
    from deadzone_build.embed.onnx_bert import fuse

    script = ("import sys; sys.modules['sympy'] = None\n"
              "import blake3\n"
              "from deadzone_build.embed import model_files\n"
              "from deadzone_build.embed.onnx_bert import BertShape, build_bert_graph, fuse, load_weights\n"
              "from deadzone_build.embed.pin import EMBEDDER_PIN\n"
              "shape = BertShape.from_pin(EMBEDDER_PIN['architecture'])\n"
              "weights = load_weights(model_files.files_dir(sys.argv[1]) / 'model.safetensors')\n"
              "print(blake3.blake3(fuse(build_bert_graph(weights, shape), shape).SerializeToString()).hexdigest())\n")
    run = subprocess.run([sys.executable, "-c", script, str(model_files_cache)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    shape = BertShape.from_pin(EMBEDDER_PIN["architecture"])
    here = blake3.blake3(fuse(build_bert_graph(weights, shape), shape).SerializeToString()).hexdigest()
    assert run.stdout.strip() == here


def test_600_corpus_chunks_are_close_to_the_fp32_graph(embedder, weights):
    """Wider than the numpy check above: the bench corpus (docs packed to ~180 pieces, cut to the
    window) against the unquantised graph, which the test above ties to the numpy reference.
    `python bench/embed.py --texts 2000` checks 2,000 the same way."""
    import onnxruntime as ort

    texts = docs_chunks(600)
    model = build_bert_graph(weights, BertShape.from_pin(EMBEDDER_PIN["architecture"]))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    reference = np.stack([session.run(None, {"input_ids": np.array([ids])})[0][0].mean(0) for ids in _ids(texts)])
    cosines = _cosines(embedder.embed(texts), reference)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.99, f"chunk {worst}: {texts[worst][:80]!r} at {cosines.min():.4f}"
    assert cosines.mean() >= 0.995


# -- determinism -------------------------------------------------------------------------------


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(embedder):
    others = docs_chunks(40)
    text = others.pop(7)
    alone = embedder.embed([text])[0]
    in_batch = embedder.embed(others[:16] + [text] + others[16:32])[16]
    assert float(alone @ in_batch) >= 0.99999
    # stronger, and what incremental builds rely on: the very same bytes
    assert alone.tobytes() == in_batch.tobytes()


def _texts_of_exactly(pieces: int, count: int) -> list[str]:
    """`count` distinct doc texts that each encode to exactly `pieces` word pieces ([CLS]/[SEP] included)."""
    tokenizer = model_files.count_tokens.tokenizer
    found: list[str] = []
    for paragraph in docs_paragraphs(min_chars=200):
        encoding = tokenizer.encode(paragraph)
        if len(encoding.ids) <= pieces:
            continue
        cut = paragraph[: encoding.offsets[pieces - 2][1]]  # offsets[0] is [CLS]: keep pieces-2 word pieces
        if len(tokenizer.encode(cut).ids) == pieces and cut not in found:
            found.append(cut)
            if len(found) == count:
                return found
    raise AssertionError(f"the docs mirror has fewer than {count} texts of {pieces} pieces")


@pytest.mark.parametrize("pieces", [9, 64, 256])
def test_a_text_gets_the_same_bytes_alone_and_in_a_full_batch_of_its_length(embedder, pieces):
    """Texts of one token count really share a batch (a 33-row matrix), and it changes no byte."""
    from deadzone_build.embed.embedder import _batches

    probe, *mates = _texts_of_exactly(pieces, 33)
    batch = mates[:16] + [probe] + mates[16:]
    lengths = [len(ids) for ids in _ids(batch)]
    assert set(lengths) == {pieces} and [len(b) for b in _batches(lengths, 33)] == [33]
    alone = Embedder(embedder.cache_dir, batch_size=33, threads=1).embed([probe])[0]
    together = Embedder(embedder.cache_dir, batch_size=33, threads=1).embed(batch)
    assert alone.tobytes() == together[16].tobytes()
    assert float(np.abs(together[:16] - together[17:]).max()) > 0  # the mates are other texts, not copies


def test_batch_size_and_threads_do_not_change_a_byte(embedder_cache, embedder):
    texts = docs_chunks(40)
    one_by_one = Embedder(embedder_cache, batch_size=1, threads=1).embed(texts)
    assert embedder.embed(texts).tobytes() == one_by_one.tobytes()


def test_concurrent_calls_get_the_same_vectors_as_serial_ones(embedder):
    from concurrent.futures import ThreadPoolExecutor

    groups = [docs_chunks(30)[i::3] for i in range(3)]
    serial = [embedder.embed(g).tobytes() for g in groups]
    with ThreadPoolExecutor(3) as pool:
        assert [v.tobytes() for v in pool.map(embedder.embed, groups)] == serial


def test_two_runs_give_identical_bytes(embedder):
    texts = docs_chunks(24)
    assert embedder.embed(texts).tobytes() == embedder.embed(texts).tobytes()


def test_vectors_come_back_in_input_order(embedder):
    texts = ["a much longer sentence about configuring the HTTP client timeout", "short", "medium length text"]
    forward = embedder.embed(texts)
    backward = embedder.embed(texts[::-1])
    assert forward.tobytes() == backward[::-1].tobytes()


# -- semantics ---------------------------------------------------------------------------------

SEMANTIC_TRIPLES = [  # (query, related, unrelated)
    ("How do I install the package with pip?", "Run pip install to add the library to your environment.",
     "The recipe needs two cups of flour and an egg."),
    ("Set a timeout on HTTP requests", "Configure the client so that requests fail after 5 seconds.",
     "Rename a column in a database table."),
    ("Define a command line flag", "Add a --verbose option to the CLI parser.",
     "The cat sat on the warm windowsill all afternoon."),
    ("Load environment variables from a file", "direnv reads .envrc and exports its variables.",
     "Sort a list of integers in descending order."),
    ("SQL injection protection", "Use parameterised queries instead of string formatting.",
     "Install a theme to change the colours of the editor."),
]


def test_related_sentences_score_higher_than_unrelated(embedder):
    for query, related, unrelated in SEMANTIC_TRIPLES:
        q, r, u = embedder.embed([query, related, unrelated])
        assert float(q @ r) > float(q @ u) + 0.1, (query, float(q @ r), float(q @ u))


def test_vectors_are_unit_float32_of_the_pinned_dimension(embedder):
    vectors = embedder.embed(["one", "two words"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, EMBEDDER_PIN["dimension"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


# -- edge cases --------------------------------------------------------------------------------


def test_empty_list_gives_an_empty_matrix(embedder):
    vectors = embedder.embed([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


def test_empty_strings_embed_like_any_other_text(embedder):
    vectors = embedder.embed(["", "some text", ""])
    assert np.isfinite(vectors).all()
    assert vectors[0].tobytes() == vectors[2].tobytes()
    assert abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-5


def test_truncation_keeps_the_first_256_pieces(embedder):
    long_text = " ".join(f"word{i % 7}" for i in range(400))
    vectors = embedder.embed(["short", long_text, long_text + " tail"])
    cut = fit_window(long_text)
    assert vectors[1].tobytes() == embedder.embed([cut])[0].tobytes() == vectors[2].tobytes()


def test_non_strings_are_rejected_with_the_position(embedder):
    with pytest.raises(TypeError, match="item 1 is NoneType"):
        embedder.embed(["fine", None])  # type: ignore[list-item]


# -- the cached model and the pin --------------------------------------------------------------


def test_model_lives_under_the_pin(embedder_cache):
    path = model_path(embedder_cache)
    assert path == embedder_cache / "embedder" / pin_id() / "model.onnx"
    manifest = json.loads((path.parent / MANIFEST_FILE).read_text())
    assert manifest["pin_id"] == pin_id()
    assert manifest["blake3"] == blake3.blake3(path.read_bytes()).hexdigest()
    assert model_is_current(embedder_cache)
    assert not list((embedder_cache / "embedder").glob(".*"))  # no temp or stale dirs left


def test_corrupt_cached_model_is_reported_then_rebuilt(embedder_cache, tmp_path, caplog):
    cache = tmp_path / "cache"
    shutil.copytree(embedder_cache, cache)
    path = model_path(cache)
    good = path.read_bytes()
    expected = blake3.blake3(good).hexdigest()
    broken = bytearray(good)
    broken[len(broken) // 2] ^= 0xFF
    path.write_bytes(bytes(broken))
    actual = blake3.blake3(bytes(broken)).hexdigest()
    assert not model_is_current(cache)

    with caplog.at_level(logging.WARNING, logger="deadzone_build.embed.embedder"):
        embedder = Embedder(cache)  # no progress callback: the report goes to logging
    report = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert str(path) in report and expected in report and actual in report and "Rebuilding" in report
    assert model_is_current(cache)
    assert path.read_bytes() == good  # the build is deterministic
    assert embedder.embed(["ok"]).shape == (1, 384)


def test_missing_digest_record_makes_the_model_stale(embedder_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(embedder_cache, cache)
    (model_path(cache).parent / MANIFEST_FILE).unlink()
    assert not model_is_current(cache)


def _model_dir_copy(tmp_path: Path, tampered: str, source: Path) -> Path:
    """A copy of the model files dir `source` (big files linked) with one byte of `tampered` flipped."""
    copy = tmp_path / "model"
    copy.mkdir()
    for name in EMBEDDER_PIN["files"]:
        if name == tampered:
            data = bytearray((source / name).read_bytes())
            data[100] ^= 0x01
            (copy / name).write_bytes(bytes(data))
        else:
            (copy / name).symlink_to(source / name)
    return copy


@pytest.mark.parametrize("tampered", ["model.safetensors", "README.md"])
def test_pinned_build_input_with_another_digest_fails_loudly_and_writes_nothing(model_files_cache, tmp_path,
                                                                               tampered):
    model_dir = _model_dir_copy(tmp_path, tampered, model_files.files_dir(model_files_cache))
    cache = tmp_path / "cache"
    with pytest.raises(EmbedderError) as error:
        ensure_model(cache, model_dir=model_dir)
    message = str(error.value)
    actual = blake3.blake3((model_dir / tampered).read_bytes()).hexdigest()
    assert str(model_dir / tampered) in message
    assert EMBEDDER_PIN["files"][tampered] in message and actual in message
    assert not (cache / "embedder").exists() or not any((cache / "embedder").iterdir())


def test_tampered_tokenizer_fails_even_with_a_good_cached_model(embedder_cache, tmp_path):
    model_dir = _model_dir_copy(tmp_path, "tokenizer.json", model_files.files_dir(embedder_cache))
    with pytest.raises(EmbedderError, match="tokenizer.json has blake3 [0-9a-f]{64}, but the pin expects "
                                            + EMBEDDER_PIN["files"]["tokenizer.json"]):
        Embedder(embedder_cache, model_dir=model_dir)


def test_the_pin_declares_the_fetched_files_and_every_setting(model_files_cache):
    source = model_files.files_dir(model_files_cache)
    for name, digest in EMBEDDER_PIN["files"].items():
        assert blake3.blake3((source / name).read_bytes()).hexdigest() == digest, name
    assert EMBEDDER_PIN["max_seq_length"] == MAX_SEQ_LENGTH == 256
    assert (EMBEDDER_PIN["pooling"], EMBEDDER_PIN["normalize"], EMBEDDER_PIN["dimension"]) == ("mean", "l2", 384)
    assert {"graph", "quantization", "recipe", "architecture"} <= set(EMBEDDER_PIN)


def test_calibration_texts_fit_the_window(model_files_cache):
    readme = (model_files.files_dir(model_files_cache) / "README.md").read_text(encoding="utf-8")
    counter = model_files.count_tokens.tokenizer
    texts = _calibration_texts(readme, counter)
    assert len(texts) >= 8
    assert all(len(counter.encode(t).ids) <= 256 for t in texts if "\n\n" in t)  # packed texts fit


# -- doit and the command line ------------------------------------------------------------------


def test_doit_task_is_up_to_date_only_with_a_verified_model(embedder_cache, tmp_path):
    from deadzone_build.tasks import BuildContext, embedder_task

    def task_for(cache):
        return embedder_task(BuildContext(registry=tmp_path, artifacts=tmp_path, cache=cache, db=tmp_path,
                                          all_slots=[], slots=[], lib=None))

    task = task_for(embedder_cache)
    assert task["basename"] == "embedder"
    (check,) = task["uptodate"]
    assert check() is True
    assert "ModelIsCurrent" in repr(check)
    assert task_for(tmp_path)["uptodate"][0]() is False
    action, args = task["actions"][0]
    assert action(*args) is True  # already built: verified, not rebuilt


def test_cli_pin_prints_the_pin_and_its_id(capsys):
    assert main(["pin", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pin_id"] == pin_id() and printed["pin"] == json.loads(json.dumps(EMBEDDER_PIN))


def test_cli_embed_prints_the_embedder_vectors(embedder_cache, embedder, monkeypatch, capsys):
    monkeypatch.setenv("DEADZONE_CACHE", str(embedder_cache))
    assert main(["embed", "--json", "hello world", ""]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pin_id"] == pin_id()
    got = np.array([row["vector"] for row in printed["vectors"]], dtype=np.float32)
    assert got.tobytes() == embedder.embed(["hello world", ""]).tobytes()
    assert main(["embed", "plain output"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# 'plain output' (4 word pieces)") and len(lines[1].split()) == 384
