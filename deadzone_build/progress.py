"""Progress bars for long work (CLI and doit only; the library reports through callbacks)."""

from __future__ import annotations

import sys
from tqdm import tqdm


class SlotProgress:
    """A `(stage, done, total)` callback drawing one tqdm bar per stage on stderr (hidden when not a TTY)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            unit = "url" if stage == "fetch" else "chunk"
            bar = tqdm(total=total, desc=f"{self.label} {stage}", unit=unit, file=sys.stderr, leave=False,
                       disable=None, dynamic_ncols=True)
            self.bars[stage] = bar
        bar.total = total
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
