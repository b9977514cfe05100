"""Embed stage: the pin, the pinned model files, the ONNX graph build, the embedder, the vector cache.

`pin` is cheap (no I/O) and is half of every content key; `embedder` loads onnxruntime and is
imported only by the commands and tasks that embed.
"""
