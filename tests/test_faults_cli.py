"""Bad registries, and the messages a new user meets: real CLI and doit processes, no tracebacks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from deadzone_build.cli import build_parser, main
from deadzone_build.errors import RegistryError
from deadzone_build.registry.load import parse_registry

ENTRY = """\
libraries:
  - lib_id: /acme/widgets
    description: Widgets.
    kind: github-md
    urls:
      - https://raw.githubusercontent.com/acme/widgets/main/README.md
"""


def env_with_repo(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEADZONE_", "GITHUB_", "GH_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**env, **extra}


def cli(*args: str | bytes, cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deadzone_build.cli", *args], cwd=cwd, env=env_with_repo(),
                          capture_output=True, text=True, timeout=300, **kw)


# ── defect 2 and 7: bad registries are errors naming file:line ───────────────

BAD_ENTRIES = {
    "kind with no value": ("kind: github-md", "kind:", r":4: entry /acme/widgets: field `kind` has no value"),
    "kind null": ("kind: github-md", "kind: ~", r":4: entry /acme/widgets: field `kind` has no value"),
    "kind empty": ("kind: github-md", 'kind: ""', r"field `kind` has no value"),
    "kind a list": ("kind: github-md", "kind: [github-md]", r":4: entry /acme/widgets: `kind` must be a single"),
    "lib_id null": ("lib_id: /acme/widgets", "lib_id: ~", r":2: entry #2: field `lib_id` has no value"),
    "lib_id empty": ("lib_id: /acme/widgets", "lib_id:", r"field `lib_id` has no value"),
    "lib_id a mapping": ("lib_id: /acme/widgets", "lib_id: {a: 1}", r"`lib_id` must be a single value"),
    "description a list": ("description: Widgets.", "description: [a, b]", r":3: .*`description` must be a single"),
    "urls a string": ("urls:\n      - https://raw.githubusercontent.com/acme/widgets/main/README.md",
                      "urls: https://x.example/a.md", r"`urls` must be a list"),
    "lib_id too long": ("lib_id: /acme/widgets", "lib_id: /acme/" + "w" * 240, r"bytes long, over 200"),
    "userinfo": ("https://raw.githubusercontent.com/acme", "https://me:secret@raw.githubusercontent.com/acme",
                 r":6: .*carries credentials"),
    "CR LF": ("- https://raw.githubusercontent.com/acme/widgets/main/README.md",
              '- "https://raw.githubusercontent.com/acme/widgets/main/README.md\\r\\nX-Evil: 1"',
              r"contains whitespace or a control character"),
    "metadata address": ("https://raw.githubusercontent.com/acme/widgets/main", "http://169.254.169.254/latest",
                         r"points at a link-local address.*DEADZONE_ALLOW_PRIVATE_HOSTS=1"),
    "loopback": ("https://raw.githubusercontent.com/acme/widgets/main", "http://127.0.0.1:8000/acme",
                 r"points at a loopback address"),
    "localhost": ("https://raw.githubusercontent.com/acme/widgets/main", "http://localhost/acme",
                  r"points at a loopback address"),
    "ipv6 loopback": ("https://raw.githubusercontent.com/acme/widgets/main", "http://[::1]:8000/acme",
                      r"points at a loopback address"),
    "private": ("https://raw.githubusercontent.com/acme/widgets/main", "http://10.1.2.3/acme",
                r"points at a private address"),
    "mapped private": ("https://raw.githubusercontent.com/acme/widgets/main", "http://[::ffff:192.168.0.1]/acme",
                       r"points at a private address"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_a_bad_entry_is_an_error_naming_its_line(case):
    old, new, message = BAD_ENTRIES[case]
    assert old in ENTRY
    with pytest.raises(RegistryError, match=message):
        parse_registry(ENTRY.replace(old, new, 1), "libraries_sources.yaml")


def test_private_hosts_are_allowed_only_when_the_user_opts_in(monkeypatch):
    text = ENTRY.replace("https://raw.githubusercontent.com", "http://127.0.0.1:8000")
    with pytest.raises(RegistryError):
        parse_registry(text)
    monkeypatch.setenv("DEADZONE_ALLOW_PRIVATE_HOSTS", "1")
    assert parse_registry(text)[0].urls == ("http://127.0.0.1:8000/acme/widgets/main/README.md",)


def test_list_on_a_registry_whose_only_entry_has_a_null_kind_fails_instead_of_listing_nothing(tmp_path):
    (tmp_path / "libraries_sources.yaml").write_text(ENTRY.replace("kind: github-md", "kind: ~"))
    proc = cli("list", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "libraries_sources.yaml:4: entry /acme/widgets: field `kind` has no value" in proc.stderr


# ── defect 8 and messages: one line, never a traceback ───────────────────────


def test_list_shows_slugs_and_pipes_into_a_closed_reader(tmp_path):
    registry = REPO / "tests" / "fixtures" / "deadzone-libraries_sources.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "deadzone_build.cli", "list", "--registry", str(registry)],
                            cwd=tmp_path, env=env_with_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""
    head = cli("list", "--registry", str(registry), cwd=tmp_path).stdout.splitlines()[0]
    assert head.split()[:2] == ["SLUG", "LIB_ID"]
    # `explain SLUG | head -1`: a few lines, all still in the buffer when the reader is gone
    proc = subprocess.Popen([sys.executable, "-m", "deadzone_build.cli", "explain", "spf13_cobra_1.9",
                             "--registry", str(registry)], cwd=tmp_path, env=env_with_repo(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""


def test_a_query_that_is_not_utf8_and_a_lib_without_slash_get_messages(tmp_path):
    proc = cli("search", b"\xff", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "the query is not valid UTF-8 text (byte 0xff at position 0)" in proc.stderr
    proc = cli("search", "flags", "--lib", "spf13/cobra", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert proc.returncode == 1 and "Did you mean `/spf13/cobra`?" in proc.stderr
    proc = cli("libs", "", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert proc.returncode == 1 and "deadzone-build libs " in proc.stderr and "deadzone-build search" not in proc.stderr


def test_bad_counts_and_slugs_are_refused_up_front(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["consolidate", "--max-missing", "-1"])
    assert exit_.value.code == 2 and "'-1' is not a count of slots" in capsys.readouterr().err
    assert main(["summary", "--record", "s" * 300, "--outcome", "success", "--status-dir", str(tmp_path)]) == 1
    assert "is not a slot slug" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, docs_server):
    docs_server.faults.hang(docs_server.url_for("/acme/widgets/main/README.md"), 60)
    (tmp_path / "libraries_sources.yaml").write_text(ENTRY)
    env = env_with_repo(DEADZONE_URL_REWRITE=docs_server.rewrite, DEADZONE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "deadzone_build.cli", "scrape", "--lib", "/acme/widgets"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not docs_server.requests:  # the scrape is waiting on the server
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()][-1] == (
        "deadzone-build scrape: interrupted; nothing half-written was kept (the previous state is intact).")
    assert not (tmp_path / "artifacts" / "acme_widgets").exists()


# ── README and --help agree ─────────────────────────────────────────────────


def test_every_option_of_every_subcommand_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `deadzone-build ([a-z-]+)[^|]*\|.*$", readme, re.M)}
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = []
    for name, command in sub.choices.items():
        assert name in rows, f"README has no row for `deadzone-build {name}`"
        for action in command._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and option not in rows[name]:
                    missing.append(f"{name} {option}")
    assert missing == []
    for variable in ("DEADZONE_DOC_DEADLINE", "DEADZONE_SLOT_DEADLINE", "DEADZONE_ALLOW_PRIVATE_HOSTS"):
        assert f"| `{variable}` |" in readme


def test_help_examples_do_not_target_upstream_and_the_shipped_registry_names_real_paths():
    for name in ("release", "fetch-release"):
        module = __import__(f"deadzone_build.commands.{name.replace('-', '_')}", fromlist=["EXAMPLE"])
        assert "laradji/deadzone" not in module.EXAMPLE
    text = (REPO / "libraries_sources.yaml").read_text()
    header = " ".join(line for line in text[: text.index("libraries:")].splitlines() if line.startswith("#"))
    named = re.findall(r"(?:\.\./|tests/)[\w./-]*\w|\bfiles/|\bindex\.json\b|\bin this folder\b", header)
    assert named, "the header says where the mirrored docs are"
    for path in named:
        assert path != "in this folder" and (REPO / path).exists(), f"the registry header names {path!r}"
