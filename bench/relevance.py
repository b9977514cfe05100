"""Relevance benchmark: does fused search beat each of its halves? And does `libs` find the library?

    PYTHONPATH=. python bench/relevance.py [--db deadzone.db] [--cache DIR] [--show-misses]

Questions live in bench/relevance/questions/*.yaml, one file per library (add a file to extend the
bench to a new library or kind):

    lib: /owner/name
    questions:
      - q: option that is inherited by every child command
        docs: [site/content/user_guide.md]     # a hit is relevant when its url ends with "/" + one of these

They were written from the mirrored docs (tests/fixtures/docs-mirror), not from what search
returns. A document is the judged unit (hit url). bench/relevance/libraries.yaml holds the
library-resolution questions (`libs: [acceptable lib_ids]`).

Each question is in the "tune" or the "check" half by a hash of its text (stable, no choice):
the fusion rules were chosen on "tune"; "check" shows whether they hold on questions they were
not chosen on. Printed: hit@1, hit@5, MRR@10, nDCG@10 for bm25 only, vectors only and fused
(each through the same version collapse and document grouping), without and with the library
filter; then libraries hit@1 and MRR@10. Needs a db built from the shipped registry (README
"Running offline") and the embedder model in --cache.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deadzone_build import settings  # noqa: E402
from deadzone_build.db.search import SearchIndex  # noqa: E402

HERE = Path(__file__).resolve().parent / "relevance"
MODES = {"bm25": ("bm25",), "vectors": ("vector",), "fused": ("bm25", "vector")}


@dataclass(frozen=True)
class Question:
    text: str
    lib: str
    docs: tuple[str, ...]

    @property
    def half(self) -> str:
        return "tune" if hashlib.blake2b(self.text.encode(), digest_size=2).digest()[0] % 2 == 0 else "check"

    def relevant(self, url: str) -> str | None:
        """The labelled document `url` is (None when it is none of them)."""
        return next((d for d in self.docs if url.endswith("/" + d)), None)


def load_questions(folder: Path = HERE / "questions") -> list[Question]:
    questions = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in data["questions"]:
            questions.append(Question(text=item["q"], lib=data["lib"], docs=tuple(item["docs"])))
    return questions


def load_library_questions(path: Path = HERE / "libraries.yaml") -> list[tuple[str, tuple[str, ...]]]:
    return [(item["q"], tuple(item["libs"])) for item in yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]]


def judge(urls: list[str], question: Question) -> tuple[float, float, float, float]:
    """hit@1, hit@5, MRR@10, nDCG@10 of one ranked url list (binary relevance per document)."""
    top = urls[:10]
    marks = [question.relevant(u) for u in top]
    first = next((n for n, m in enumerate(marks) if m), None)
    seen: set[str] = set()
    dcg = 0.0
    for n, mark in enumerate(marks):
        if mark and mark not in seen:  # each labelled document counts once
            seen.add(mark)
            dcg += 1.0 / math.log2(n + 2)
    ideal = sum(1.0 / math.log2(n + 2) for n in range(min(len(question.docs), 10)))
    return (float(first == 0), float(first is not None and first < 5),
            0.0 if first is None else 1.0 / (first + 1), dcg / ideal)


def mean(rows: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(sum(col) / len(rows) for col in zip(*rows)) if rows else (0.0,) * 4


def run(index: SearchIndex, embedder, questions: list[Question], show_misses: bool) -> dict:
    results: dict = {}
    for filtered in (False, True):
        for mode, signals in MODES.items():
            for q in questions:
                hits = index.search(q.text, embedder=embedder, lib=q.lib if filtered else None, limit=10,
                                    signals=signals)
                score = judge([h.url for h in hits], q)
                results.setdefault((filtered, mode, q.half), []).append(score)
                results.setdefault((filtered, mode, "all"), []).append(score)
                if show_misses and mode == "fused" and score[1] == 0.0:
                    print(f"  miss ({'lib' if filtered else 'all'}): {q.lib} {q.text!r} -> "
                          f"{[h.url.rsplit('/', 1)[-1] for h in hits[:5]]}")
    return {key: mean(rows) for key, rows in results.items()}


def libraries(index: SearchIndex, embedder, questions) -> tuple[float, float, list[str]]:
    hit1, rr, misses = 0.0, 0.0, []
    for text, expected in questions:
        ranked = list(dict.fromkeys(h.lib_id for h in index.libs(text, embedder=embedder, limit=20)))[:10]
        first = next((n for n, lib in enumerate(ranked) if lib in expected), None)
        hit1 += first == 0
        rr += 0.0 if first is None else 1.0 / (first + 1)
        if first != 0:
            misses.append(f"{text!r} -> {ranked[:3]}")
    return hit1 / len(questions), rr / len(questions), misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="deadzone.db")
    parser.add_argument("--cache", help="embedder cache dir (default $DEADZONE_CACHE or ./cache)")
    parser.add_argument("--show-misses", action="store_true", help="list the fused misses at 5")
    args = parser.parse_args()
    from deadzone_build.embed.embedder import Embedder

    embedder = Embedder(settings.cache_dir(args.cache))
    index = SearchIndex(Path(args.db))
    questions = load_questions()
    halves = {h: sum(q.half == h for q in questions) for h in ("tune", "check")}
    print(f"{len(questions)} questions over {len({q.lib for q in questions})} libraries "
          f"(tune {halves['tune']}, check {halves['check']}); db {args.db}")
    scores = run(index, embedder, questions, args.show_misses)
    print(f"{'':22s}{'hit@1':>7s}{'hit@5':>7s}{'MRR@10':>8s}{'nDCG@10':>9s}")
    verdicts = []
    for filtered in (False, True):
        for half in ("all", "tune", "check"):
            print(f"-- {'with --lib' if filtered else 'no filter'}, {half} questions")
            for mode in MODES:
                s = scores[(filtered, mode, half)]
                print(f"   {mode:19s}{s[0]:7.3f}{s[1]:7.3f}{s[2]:8.3f}{s[3]:9.3f}")
            fused, best5, best_mrr = (scores[(filtered, "fused", half)],
                                      max(scores[(filtered, m, half)][1] for m in ("bm25", "vectors")),
                                      max(scores[(filtered, m, half)][2] for m in ("bm25", "vectors")))
            ok = fused[1] >= best5 and fused[2] >= best_mrr
            verdicts.append(ok)
            print(f"   fused >= best half on hit@5 ({fused[1]:.3f} vs {best5:.3f}) and MRR@10 "
                  f"({fused[2]:.3f} vs {best_mrr:.3f}): {'yes' if ok else 'NO'}")
    hit1, mrr, misses = libraries(index, embedder, load_library_questions())
    print(f"libraries ({len(load_library_questions())} questions): hit@1 {hit1:.3f}, MRR@10 {mrr:.3f}")
    for miss in misses:
        print(f"  not first: {miss}")
    print(f"acceptance (fused >= both halves everywhere): {'yes' if all(verdicts) else 'NO'}")
    index.close()


if __name__ == "__main__":
    main()
