"""Which `.go` files of a directory make the package, as `go/build` decides for linux/amd64.

    file_is_built(name, source)  -> bool   filename suffixes (_GOOS, _GOARCH), `//go:build`, `// +build`
    package_files(files)         -> [name] the built files, or (none built) every file not `ignore`d

The build context is fixed: GOOS=linux, GOARCH=amd64, cgo enabled, compiler gc, every `go1.N`
release tag satisfied. That is what `go doc` and pkg.go.dev's first build context show. Test
files (`_test.go`) and names starting with `_` or `.` are never part of a package.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

GOOS = "linux"
GOARCH = "amd64"
# go/build's syslist (plus wasip1, known since Go 1.21): a file suffix naming one of these is a constraint.
KNOWN_OS = frozenset("aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd "
                     "plan9 solaris wasip1 windows zos".split())
KNOWN_ARCH = frozenset("386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips mipsle mips64 mips64le "
                       "mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 s390x sparc sparc64 "
                       "wasm".split())
CONTEXT_TAGS = frozenset({GOOS, GOARCH, "unix", "gc", "cgo"})
_RELEASE_TAG = re.compile(r"go1\.\d+")
_TOKEN = re.compile(r"\s*(\(|\)|!|&&|\|\||[A-Za-z0-9_.]+)")


class ConstraintSyntaxError(ValueError):
    """A `//go:build` line that is not a valid expression."""


def context_tag(tag: str) -> bool:
    """True when the linux/amd64 context satisfies `tag`."""
    return tag in CONTEXT_TAGS or bool(_RELEASE_TAG.fullmatch(tag))


def good_os_arch_file(name: str, match: Callable[[str], bool] = context_tag) -> bool:
    """go/build's goodOSArchFile: `x_linux.go`, `x_amd64.go`, `x_linux_amd64.go` constrain the file."""
    stem = name.split(".", 1)[0]
    if "_" not in stem:
        return True
    parts = stem[stem.index("_"):].split("_")
    if parts and parts[-1] == "test":
        parts = parts[:-1]
    if len(parts) >= 2 and parts[-2] in KNOWN_OS and parts[-1] in KNOWN_ARCH:
        return match(parts[-2]) and match(parts[-1])
    if parts and (parts[-1] in KNOWN_OS or parts[-1] in KNOWN_ARCH):
        return match(parts[-1])
    return True


def header_constraints(source: bytes) -> tuple[str | None, list[str]]:
    """The `//go:build` expression and the `// +build` lines of the file's leading comments."""
    go_build: str | None = None
    plus_build: list[str] = []
    in_block = False
    for raw in source.split(b"\n"):
        line = raw.decode("utf-8", "replace").strip()
        if in_block:
            in_block = "*/" not in line
            continue
        if not line:
            continue
        if line.startswith("/*"):
            in_block = "*/" not in line[2:]
            continue
        if not line.startswith("//"):
            break  # the header ends at the first line of code (the package clause)
        if line.startswith("//go:build") and (len(line) == 10 or line[10] in " \t"):
            go_build = go_build if go_build is not None else line[10:].strip()
        elif re.match(r"//\s*\+build(\s|$)", line):
            plus_build.append(re.sub(r"^//\s*\+build", "", line).strip())
    return go_build, plus_build


def eval_go_build(expression: str, match: Callable[[str], bool] = context_tag) -> bool:
    """Evaluate a `//go:build` expression (`!`, `&&`, `||`, parentheses) with `match` for tags."""
    tokens: list[str] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found:
            raise ConstraintSyntaxError(f"unexpected {text[position:]!r} in //go:build {expression}")
        tokens.append(found.group(1))
        position = found.end()
    value, rest = _parse_or(tokens, match)
    if rest:
        raise ConstraintSyntaxError(f"unexpected {rest[0]!r} in //go:build {expression}")
    return value


def _parse_or(tokens: list[str], match: Callable[[str], bool]) -> tuple[bool, list[str]]:
    value, tokens = _parse_and(tokens, match)
    while tokens and tokens[0] == "||":
        right, tokens = _parse_and(tokens[1:], match)
        value = value or right
    return value, tokens


def _parse_and(tokens: list[str], match: Callable[[str], bool]) -> tuple[bool, list[str]]:
    value, tokens = _parse_not(tokens, match)
    while tokens and tokens[0] == "&&":
        right, tokens = _parse_not(tokens[1:], match)
        value = value and right
    return value, tokens


def _parse_not(tokens: list[str], match: Callable[[str], bool]) -> tuple[bool, list[str]]:
    if not tokens:
        raise ConstraintSyntaxError("unexpected end of //go:build expression")
    head, rest = tokens[0], tokens[1:]
    if head == "!":
        value, rest = _parse_not(rest, match)
        return not value, rest
    if head == "(":
        value, rest = _parse_or(rest, match)
        if not rest or rest[0] != ")":
            raise ConstraintSyntaxError("missing ) in //go:build expression")
        return value, rest[1:]
    if head in (")", "&&", "||"):
        raise ConstraintSyntaxError(f"unexpected {head!r} in //go:build expression")
    return match(head), rest


def eval_plus_build(lines: Iterable[str], match: Callable[[str], bool] = context_tag) -> bool:
    """Old `// +build` lines: each line is an OR of space-separated ANDs of comma-separated terms."""
    def term(word: str) -> bool:
        return not match(word[1:]) if word.startswith("!") else match(word)
    return all(any(all(term(t) for t in option.split(",") if t) for option in line.split())
               for line in lines if line.split())


def _mentions_ignore(source: bytes) -> bool:
    go_build, plus_build = header_constraints(source)
    words = re.findall(r"[A-Za-z0-9_.]+", " ".join(filter(None, [go_build, *plus_build])))
    return "ignore" in words


def is_package_file_name(name: str) -> bool:
    """A non-test `.go` file that go/build would consider (not `_x.go`, `.x.go`, `x_test.go`)."""
    return name.endswith(".go") and not name.endswith("_test.go") and not name.startswith(("_", "."))


def file_is_built(name: str, source: bytes, match: Callable[[str], bool] = context_tag) -> bool:
    """go/build's decision for one file under `match` (default: linux/amd64, cgo, gc)."""
    if not is_package_file_name(name) or not good_os_arch_file(name, match):
        return False
    go_build, plus_build = header_constraints(source)
    try:
        if go_build is not None:
            return eval_go_build(go_build, match)
        return eval_plus_build(plus_build, match)
    except ConstraintSyntaxError:
        return False  # go/build rejects the file too


def package_files(files: dict[str, bytes]) -> list[str]:
    """The sorted names of the files that make the package.

    When no file is built for linux/amd64 (crypto/boring needs the `boringcrypto` tag), every
    file whose constraint does not say `ignore` is documented instead, so the package still
    has its docs.
    """
    built = sorted(name for name, source in files.items() if file_is_built(name, source))
    if built:
        return built
    return sorted(name for name, source in files.items()
                  if is_package_file_name(name) and not _mentions_ignore(source))
