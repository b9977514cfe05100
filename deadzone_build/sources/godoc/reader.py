"""go/doc's reader: the parsed files of one package → what `go doc -all` lists.

    read_package(import_path, files) -> Package

The rules are go/doc's (Go 1.19 `reader.go`, `exports.go`), reproduced where they change what
is listed or where a doc lands:
- exported identifiers only; methods of unexported types are kept only when promoted;
- a function returning exactly one visible type of the package (`T`, `*T`, `[]T`, alongside
  predeclared or imported types such as `error`) is a constructor listed under `T`;
- a const/var group belongs to type `T` when at least 75% of its specs have type `T` (a const
  spec without type or value inherits the previous one);
- exported methods of unexported embedded struct fields are promoted to the outer type
  (shallower wins, same-depth conflicts drop the method);
- the package doc is every file's package comment, in file-name order; notes are comment groups
  starting with `MARKER(uid):`.
Ordering is go/doc's too: groups before single values (then by name), funcs and types by name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from deadzone_build.sources.godoc.parse import FuncDecl, GoFile, TypeDecl, TypeRef, ValueDecl, ValueSpec

PREDECLARED_TYPES = frozenset(
    "any bool byte comparable complex64 complex128 error float32 float64 int int8 int16 int32 int64 "
    "rune string uint uint8 uint16 uint32 uint64 uintptr".split())
_NOTE_COMMENT = re.compile(r"^/[/*][ \t]*([A-Z][A-Z]+)\(([^)]+)\):?")
_NOTE_TEXT = re.compile(r"^[ \t]*([A-Z][A-Z]+)\(([^)]+)\):?")


def is_exported(name: str) -> bool:
    return bool(name) and unicodedata.category(name[0]) == "Lu"


@dataclass
class Value:
    token: str
    names: list[str]  # exported names only
    doc: str
    source: str  # the declaration as go doc prints it: unexported specs left out
    order: int
    single_name: str  # go/doc's sortingName: the name of a one-spec, one-name decl, else ""
    grouped: bool = False  # written `const ( ... )`
    specs: list[tuple[list[str], str]] = field(default_factory=list)  # (exported names, spec lines)


@dataclass
class Func:
    name: str
    doc: str
    signature: str
    receiver: str = ""  # "(tr *Reader)"; for a promoted method the outer type replaces the original
    level: int = 0  # 0: declared on the type; n: promoted through n embeddings
    original: str = ""  # the declaring type of a promoted method


@dataclass
class Type:
    name: str
    doc: str
    source: str
    consts: list[Value] = field(default_factory=list)
    vars: list[Value] = field(default_factory=list)
    funcs: list[Func] = field(default_factory=list)
    methods: list[Func] = field(default_factory=list)


@dataclass
class Note:
    marker: str
    uid: str
    body: str


@dataclass
class Package:
    import_path: str
    name: str
    doc: str
    notes: list[Note]
    consts: list[Value]
    vars: list[Value]
    funcs: list[Func]
    types: list[Type]

    def identifiers(self) -> list[tuple[str, ...]]:
        """(kind, name[, owner]) of everything listed, for tests and counts."""
        found: list[tuple[str, ...]] = []
        for values, kind in ((self.consts, "const"), (self.vars, "var")):
            found += [(kind, n) for v in values for n in v.names]
        found += [("func", f.name) for f in self.funcs]
        for t in self.types:
            found.append(("type", t.name))
            for values, kind in ((t.consts, "const"), (t.vars, "var")):
                found += [(kind, n, t.name) for v in values for n in v.names]
            found += [("func", f.name, t.name) for f in t.funcs]
            found += [("method", m.name, t.name) for m in t.methods]
        return found


@dataclass
class _Method:
    decl: FuncDecl | None  # None marks a same-level conflict
    level: int = 0
    receiver: str = ""
    original: str = ""


@dataclass
class _NamedType:
    name: str
    decl: TypeDecl | None = None
    is_struct: bool = False
    is_embedded: bool = False
    embedded: dict[str, bool] = field(default_factory=dict)  # name -> embedded as pointer
    values: list[Value] = field(default_factory=list)
    funcs: dict[str, FuncDecl] = field(default_factory=dict)
    methods: dict[str, _Method] = field(default_factory=dict)


class _Reader:
    def __init__(self) -> None:
        self.types: dict[str, _NamedType] = {}
        self.funcs: dict[str, _Method] = {}
        self.values: list[Value] = []
        self.order = 0
        self.dot_import = False

    def lookup(self, name: str) -> _NamedType | None:
        if not name or name == "_":
            return None
        if name not in self.types:
            self.types[name] = _NamedType(name)
        return self.types[name]

    def read_file(self, f: GoFile) -> None:
        self.dot_import = self.dot_import or f.dot_import
        for decl in f.decls:
            if isinstance(decl, ValueDecl):
                self.read_value(decl)
            elif isinstance(decl, TypeDecl):
                if is_exported(decl.name):
                    self.read_type(decl)
            elif is_exported(decl.name):
                self.read_func(decl)

    def read_type(self, decl: TypeDecl) -> None:
        typ = self.lookup(decl.name)
        if typ is None:
            return
        typ.decl, typ.is_struct = decl, decl.is_struct
        for ref in decl.embedded:
            if ref.imported:
                continue
            embedded = self.lookup(ref.name)
            if embedded is not None:
                embedded.is_embedded = True
                typ.embedded[embedded.name] = ref.pointer

    def read_func(self, decl: FuncDecl) -> None:
        if decl.receiver is not None:
            if decl.receiver.imported:
                return
            typ = self.lookup(decl.receiver.name)
            if typ is not None:
                _set(typ.methods, decl)
            return
        candidates = []
        for ref in decl.results:
            if ref.imported or not is_exported(ref.name) or self._predeclared(ref.name):
                continue
            if ref.name in decl.type_params:
                continue  # a type parameter is not a defined type
            typ = self.lookup(ref.name)
            if typ is not None:
                candidates.append(typ)
                if len(candidates) > 1:
                    break
        if len(candidates) == 1:
            if not (candidates[0].funcs.get(decl.name) and candidates[0].funcs[decl.name].doc):
                candidates[0].funcs[decl.name] = decl
            return
        _set(self.funcs, decl)

    def _predeclared(self, name: str) -> bool:
        return name in PREDECLARED_TYPES and name not in self.types

    def read_value(self, decl: ValueDecl) -> None:
        specs = _exported_specs(decl)
        if not specs:
            return
        dominant, frequency, previous = "", 0, ""
        for spec in specs:
            name = ""
            if spec.type is not None:
                name = "" if spec.type.imported else spec.type.name
            elif decl.token == "const" and not spec.has_values:
                name = previous
            if name:
                if dominant and dominant != name:
                    dominant = ""
                    break
                dominant, frequency = name, frequency + 1
            previous = name
        target = self.values
        if dominant and is_exported(dominant) and frequency >= int(len(specs) * 0.75):
            typ = self.lookup(dominant)
            if typ is not None:
                target = typ.values
        names = [n for spec in specs for n in spec.names if is_exported(n)]
        single = specs[0].names[0] if len(specs) == 1 and len(specs[0].names) == 1 else ""
        target.append(Value(decl.token, names, decl.doc, _value_source(decl, specs), self.order, single,
                            decl.grouped, [([n for n in spec.names if is_exported(n)], spec.source)
                                           for spec in specs]))
        self.order += 1

    def compute_method_sets(self) -> None:
        for typ in self.types.values():
            if typ.is_struct:
                self._collect_embedded(typ.methods, typ, typ.name, False, 1, set())

    def _collect_embedded(self, methods: dict[str, _Method], typ: _NamedType, receiver: str,
                          embedded_is_ptr: bool, level: int, visited: set[str]) -> None:
        visited.add(typ.name)
        for name, is_ptr in typ.embedded.items():
            embedded = self.types[name]
            this_ptr = embedded_is_ptr or is_ptr
            for method in list(embedded.methods.values()):
                if method.level == 0 and method.decl is not None:
                    _add(methods, _customize(method.decl, receiver, this_ptr, level))
            if name not in visited:
                self._collect_embedded(methods, embedded, receiver, this_ptr, level + 1, visited)
        visited.discard(typ.name)

    def cleanup_types(self) -> None:
        for name, typ in list(self.types.items()):
            visible = is_exported(name)
            predeclared = name in PREDECLARED_TYPES
            if typ.decl is None and (predeclared or visible and (typ.is_embedded or self.dot_import)):
                self.values.extend(typ.values)
                for fname, decl in typ.funcs.items():
                    self.funcs[fname] = _Method(decl)
                if not predeclared:
                    for mname, method in typ.methods.items():
                        self.funcs.setdefault(mname, method)
            if typ.decl is None or not visible:
                del self.types[name]


def _set(methods: dict[str, _Method], decl: FuncDecl) -> None:
    """go/doc's methodSet.set: a documented implementation seen first wins."""
    old = methods.get(decl.name)
    if old is not None and old.decl is not None and old.decl.doc:
        return
    methods[decl.name] = _Method(decl, 0, decl.receiver_text, "")


def _add(methods: dict[str, _Method], method: _Method) -> None:
    """go/doc's methodSet.add: the shallower method wins, same depth is a conflict."""
    old = methods.get(method.decl.name if method.decl else "")
    name = method.decl.name  # type: ignore[union-attr]
    if old is None or method.level < old.level:
        methods[name] = method
    elif method.level == old.level:
        methods[name] = _Method(None, method.level)


def _customize(decl: FuncDecl, receiver: str, embedded_is_ptr: bool, level: int) -> _Method:
    star = "*" if (not embedded_is_ptr and decl.receiver is not None and decl.receiver.pointer) else ""
    var = f"{decl.receiver_var} " if decl.receiver_var else ""
    original = decl.receiver.name if decl.receiver else ""
    return _Method(decl, level, f"({var}{star}{receiver})", original)


def _exported_specs(decl: ValueDecl) -> list[ValueSpec]:
    """go/doc's filterSpecList: specs with an exported name; iota specs keep their implied type."""
    specs = decl.specs
    if decl.token == "const":
        previous: TypeRef | None = None
        propagated = []
        for spec in specs:
            if spec.type is None and not spec.has_values and previous is not None:
                spec = ValueSpec(spec.names, previous, spec.has_values, spec.source)
            previous = None if any(is_exported(n) for n in spec.names) else spec.type
            propagated.append(spec)
        specs = propagated
    return [spec for spec in specs if any(is_exported(n) for n in spec.names)]


def _value_source(decl: ValueDecl, kept: list[ValueSpec]) -> str:
    if len(kept) == len(decl.specs):
        return decl.source
    body = "\n".join(spec.source.rstrip() for spec in kept)
    if not decl.grouped:
        return f"{decl.token} {body}"
    return f"{decl.token} (\n{body}\n)"


def _func(method: _Method) -> Func:
    decl = method.decl
    assert decl is not None
    signature = decl.signature
    if method.level and decl.receiver_text:  # promoted: show the outer receiver, as go doc does
        signature = signature.replace(decl.receiver_text, method.receiver, 1)
    return Func(decl.name, decl.doc, signature, method.receiver or decl.receiver_text, method.level,
                method.original)


def _sorted_values(values: list[Value], token: str) -> list[Value]:
    chosen = [v for v in values if v.token == token]
    return sorted(chosen, key=lambda v: (v.single_name, v.order))


def _notes(files: list[GoFile]) -> list[Note]:
    notes: list[Note] = []
    for f in files:
        for group in f.comment_groups:
            starts = [i for i, c in enumerate(group.comments) if _NOTE_COMMENT.match(c.text)]
            for n, start in enumerate(starts):
                end = starts[n + 1] if n + 1 < len(starts) else len(group.comments)
                text = type(group)(group.comments[start:end], False).text()
                found = _NOTE_TEXT.match(text)
                if found:
                    body = _clean(text[found.end():])
                    if body:
                        notes.append(Note(found.group(1), found.group(2), body))
    return notes


def _clean(text: str) -> str:
    """go/doc's clean(s, keepNL): runs of blanks → one space, trimmed."""
    return re.sub(r"[ \t\r]+", " ", text).strip(" ")


def read_package(import_path: str, files: list[GoFile]) -> Package:
    """What go/doc lists for the package made of `files` (already filtered by build constraints)."""
    package_name = _package_name(files)
    files = sorted((f for f in files if f.package == package_name), key=lambda f: f.name)  # go/build wants one
    reader = _Reader()
    doc = ""
    for f in files:
        if f.package_doc:
            doc = f.package_doc if not doc else doc + "\n" + f.package_doc
        reader.read_file(f)
    reader.compute_method_sets()
    reader.cleanup_types()
    types = []
    for name in sorted(reader.types):
        typ = reader.types[name]
        assert typ.decl is not None
        methods = [_func(m) for m in typ.methods.values()
                   if m.decl is not None and (m.level == 0 or not is_exported(m.original))]
        types.append(Type(name, typ.decl.doc, typ.decl.source,
                          _sorted_values(typ.values, "const"), _sorted_values(typ.values, "var"),
                          sorted((_func(_Method(d)) for d in typ.funcs.values()), key=lambda f: f.name),
                          sorted(methods, key=lambda f: f.name)))
    funcs = sorted((_func(m) for m in reader.funcs.values() if m.decl is not None), key=lambda f: f.name)
    return Package(import_path, package_name, doc, _notes(files), _sorted_values(reader.values, "const"),
                   _sorted_values(reader.values, "var"), funcs, types)


def _package_name(files: list[GoFile]) -> str:
    """The package most files declare (a stray `package main` generator would break go/build)."""
    names = [f.package for f in files if f.package != "documentation"] or [f.package for f in files]
    return max(sorted(set(names)), key=names.count) if names else ""
