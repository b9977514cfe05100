"""go/doc's rules on small hand-written sources: doc comment attachment, build constraints,
constructors, promoted methods, typed const groups, notes."""

from __future__ import annotations

import pytest

from deadzone_build.sources.godoc.constraints import (eval_go_build, file_is_built, good_os_arch_file,
                                                      package_files)
from deadzone_build.sources.godoc.parse import comment_text, parse_file
from deadzone_build.sources.godoc.reader import read_package

SOURCE = b'''// Copyright notice, not the package doc.

//go:build linux || darwin

// Package demo shows the rules.
package demo

import "io"

// Detached comment: a blank line separates it from F.

// F is documented.
//
//go:noinline
func F() {}

func G() {} // trailing comment, not a doc

// Kind is typed.
type Kind int

// Kinds, one group doc.
const (
	hidden Kind = iota
	Alpha
	Beta
)

// Thing holds things.
type Thing struct {
	inner
	io.Reader
	Name string
}

type inner struct{}

// Promoted is promoted to Thing.
func (inner) Promoted() {}

// NewThing is a constructor even with an error result.
func NewThing() (*Thing, error) { return nil, nil }

// Things returns a slice: still a constructor.
func Things() []Thing { return nil }

// Pair returns two package types: a plain function.
func Pair() (Thing, Kind) { return Thing{}, 0 }

// BUG(ann): something is broken.
func (t *Thing) Do() {}

func unexported() {}
'''


def test_doc_comments_follow_go_parser():
    f = parse_file("demo.go", SOURCE)
    assert f.package_doc == "Package demo shows the rules.\n"
    docs = {d.name: d.doc for d in f.decls if hasattr(d, "name")}
    assert docs["F"] == "F is documented.\n"  # the directive is dropped, the blank // kept then trimmed
    assert docs["G"] == ""


def test_reader_groups_like_go_doc():
    package = read_package("example.com/demo", [parse_file("demo.go", SOURCE)])
    assert [f.name for f in package.funcs] == ["F", "G", "Pair"]
    thing = next(t for t in package.types if t.name == "Thing")
    assert [f.name for f in thing.funcs] == ["NewThing", "Things"]
    assert [(m.name, m.level, m.receiver) for m in thing.methods] == [("Do", 0, "(t *Thing)"),
                                                                      ("Promoted", 1, "(Thing)")]
    kind = next(t for t in package.types if t.name == "Kind")
    assert [(v.names, v.doc) for v in kind.consts] == [(["Alpha", "Beta"], "Kinds, one group doc.\n")]
    assert "hidden" not in kind.consts[0].source
    assert [t.name for t in package.types] == ["Kind", "Thing"]
    assert [(n.marker, n.uid, n.body) for n in package.notes] == [("BUG", "ann", "something is broken.\n")]


def test_comment_text_is_ast_text():
    assert comment_text(["//  two spaces", "//", "//", "//\tx  "]) == " two spaces\n\n\tx\n"
    assert comment_text(["/* block\n   lines */"]) == " block\n   lines\n"  # Go keeps the space
    assert comment_text(["//line foo.go:1", "//export F"]) == ""


@pytest.mark.parametrize("expression, expected", [
    ("linux", True), ("!linux", False), ("linux && amd64", True), ("windows || (linux && !arm)", True),
    ("ignore", False), ("go1.18", True), ("boringcrypto", False), ("unix && cgo", True),
    ("(darwin || freebsd) && !linux", False)])
def test_go_build_expressions(expression, expected):
    assert eval_go_build(expression) is expected


@pytest.mark.parametrize("name, expected", [
    ("a_linux.go", True), ("a_windows.go", False), ("a_linux_arm64.go", False), ("a_amd64.go", True),
    ("linux.go", True), ("a_unix.go", True), ("x_js_wasm.go", False)])
def test_file_name_constraints(name, expected):
    assert good_os_arch_file(name) is expected


def test_excluded_files():
    assert not file_is_built("gen.go", b"//go:build ignore\n\npackage main\n")
    assert not file_is_built("a_test.go", b"package a\n")
    assert not file_is_built("_x.go", b"package a\n")
    assert not file_is_built("bad.go", b"//go:build linux &&\n\npackage a\n")
    assert file_is_built("old.go", b"// +build linux,amd64 windows\n\npackage a\n")
    assert not file_is_built("old.go", b"// +build windows\n\npackage a\n")


def test_package_with_only_tagged_files_falls_back_to_them():
    files = {"boring.go": b"//go:build boringcrypto\n\npackage boring\n",
             "gen.go": b"//go:build ignore\n\npackage main\n"}
    assert package_files(files) == ["boring.go"]
