"""Text sets: UTF-8 chunking, seeded selection, the Pile procedure (local corpus and a mocked Hub),
the import of the 2025 paper's jsonl, and the mini set built from the real installed corpora."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llkl_db.builders.texts.corpora import bible, fortunes, jargon, wikipedia
from llkl_db.builders.texts.corpora.locations import CorpusPaths
from llkl_db.builders.texts.corpora.versions import debian_version
from llkl_db.builders.texts.hub import REPO_ID, HubPile, shard_names
from llkl_db.builders.texts.pile import PileParams, chunk_positions, select_pile
from llkl_db.builders.texts.selection import pile_sample, sample_per_source, split_evenly
from llkl_db.cli.app import app
from llkl_db.errors import LlklError
from llkl_db.io.texts import read_texts, text_set_sha256
from llkl_db.textsets.chunk import Chunk
from llkl_db.textsets.chunking import chunk_document, split_bytes
from llkl_db.textsets.modelmap import read_modelmap

DATA = Path(__file__).parent / "data" / "texts"
SHIPPED_MINI = Path(__file__).parents[1] / "llkl_db" / "data" / "texts" / "mini.parquet"
runner = CliRunner()


def pile_docs() -> list[dict]:
    """The local Pile-like corpus: 40 documents of public-domain text, some with multi-byte text."""
    with open(DATA / "pile-sample.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def paper_split_utf8(text: str, max_bytes: int) -> list[str]:
    """The 2025 notebook's split_utf8, restated as the reference for ours."""
    chunks = []
    current = text
    while len(current.encode("utf-8")) > max_bytes:
        encoded = current.encode("utf-8")
        pos = max_bytes
        while encoded[pos] & 0xC0 == 0x80:
            pos -= 1
        chunks.append(encoded[:pos].decode("utf-8"))
        current = encoded[pos:].decode("utf-8")
    if current:
        chunks.append(current)
    return chunks


def paper_pile_set(docs: list[dict], n_docs: int, n_sample: int, n_keep: int) -> list[tuple[int, int, str, str]]:
    """The 2025 notebook's whole procedure, in memory, with the global generator."""
    chunked = []
    for pile_idx, doc in enumerate(docs[:n_docs]):
        for chunk_idx, chunk in enumerate(paper_split_utf8(doc["text"], 1024)):
            if len(chunk.encode("utf-8")) > 256:
                chunked.append((pile_idx, chunk_idx, chunk, doc["meta"]["pile_set_name"]))
    state = random.getstate()
    try:
        random.seed(42)
        return random.sample(chunked, n_sample)[:n_keep]
    finally:
        random.setstate(state)


# --- chunking ---------------------------------------------------------------------------------


def test_ascii_at_exact_limits():
    assert list(split_bytes("a" * 1024, 1024)) == ["a" * 1024]
    assert list(split_bytes("a" * 1025, 1024)) == ["a" * 1024, "a"]
    assert list(split_bytes("", 1024)) == []
    assert chunk_document("") == []


@pytest.mark.parametrize(
    ("char", "width"),
    [("é", 2), ("€", 3), ("🙂", 4)],
)
def test_multibyte_character_straddling_the_boundary_moves_to_the_next_chunk(char, width):
    assert len(char.encode("utf-8")) == width
    text = "a" * 1023 + char + "b" * 10
    pieces = list(split_bytes(text, 1024))
    assert pieces == ["a" * 1023, char + "b" * 10]
    # a character ending exactly on the boundary stays in the first chunk
    text = "a" * (1024 - width) + char + "b"
    assert list(split_bytes(text, 1024)) == ["a" * (1024 - width) + char, "b"]


def test_only_multibyte_characters():
    text = "日本語" * 500  # 3 bytes each, 4,500 bytes
    pieces = list(split_bytes(text, 1024))
    assert [len(p.encode("utf-8")) for p in pieces] == [1023, 1023, 1023, 1023, 408]
    assert "".join(pieces) == text


def test_split_matches_the_papers_split_on_random_text():
    rng = random.Random(0)
    alphabet = "abc xyz\néß€日本🙂"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 1500)))
        max_bytes = rng.choice([4, 5, 7, 64, 600, 1024])
        pieces = list(split_bytes(text, max_bytes))
        assert pieces == paper_split_utf8(text, max_bytes)
        assert "".join(pieces) == text
        assert all(0 < len(p.encode("utf-8")) <= max_bytes for p in pieces)


def test_min_bytes_is_strict_and_chunk_idx_counts_dropped_pieces():
    # pieces of 1024, 1024 and 256 bytes: the last is not longer than 256, so it is dropped
    assert [i for i, _ in chunk_document("x" * 2304)] == [0, 1]
    assert [i for i, _ in chunk_document("x" * 2305)] == [0, 1, 2]
    assert chunk_document("x" * 256) == []
    assert chunk_document("x" * 257) == [(0, "x" * 257)]
    # mini settings: MIN 200 / MAX 600
    kept = chunk_document("y" * 1400, max_bytes=600, min_bytes=200)
    assert [(i, len(t)) for i, t in kept] == [(0, 600), (1, 600)]
    kept = chunk_document("y" * 1401, max_bytes=600, min_bytes=200)
    assert [(i, len(t)) for i, t in kept] == [(0, 600), (1, 600), (2, 201)]


def test_bad_limits_raise():
    with pytest.raises(ValueError):
        list(split_bytes("abc", 3))
    with pytest.raises(ValueError):
        chunk_document("abc", max_bytes=256, min_bytes=256)


# --- selection ----------------------------------------------------------------------------------


def test_pile_sample_is_the_seeded_global_draw_and_leaves_global_state_alone():
    population = list(range(1000))
    state = random.getstate()
    ours = pile_sample(population, seed=42, n_sample=40, n_keep=10)
    assert random.getstate() == state
    random.seed(42)
    assert ours == random.sample(population, 40)[:10]
    random.setstate(state)
    # a range gives the same positions as the list it indexes
    assert pile_sample(range(1000), 42, 40, 10) == ours
    with pytest.raises(LlklError):
        pile_sample(range(5), 42, 6, 3)


def test_sample_per_source_is_deterministic():
    pools = {"a": [f"a{i}" for i in range(50)], "b": [f"b{i}" for i in range(30)]}
    counts = {"a": 5, "b": 3}
    first = sample_per_source(pools, counts, seed=42)
    assert first == sample_per_source(pools, counts, seed=42)
    assert sample_per_source(pools, counts, seed=43) != first
    assert sorted(x[0] for x in first) == ["a"] * 5 + ["b"] * 3
    assert text_set_sha256(first) == text_set_sha256(sample_per_source(pools, counts, seed=42))
    with pytest.raises(LlklError, match="fewer than the 31"):
        sample_per_source(pools, {"b": 31}, seed=42)


def test_split_evenly():
    assert split_evenly(160, ["w", "b", "j", "f"]) == {"w": 40, "b": 40, "j": 40, "f": 40}
    assert split_evenly(10, ["w", "b", "j"]) == {"w": 4, "b": 3, "j": 3}


# --- the Pile procedure on a local corpus --------------------------------------------------------


def test_pile_procedure_equals_the_papers_procedure_on_a_local_corpus():
    docs = pile_docs()
    params = PileParams(n_docs=40, n_sample=12, n_keep=5)
    assert len(chunk_positions(iter(docs), params)[0]) == 74
    ours = select_pile(lambda: iter(docs), params)
    theirs = paper_pile_set(docs, 40, 12, 5)
    assert [(int(c.doc_id), c.chunk_idx, c.text, c.source) for c in ours] == theirs
    assert [(c.doc_id, c.chunk_idx) for c in ours] == [("11", 0), ("3", 0), ("20", 1), ("18", 0), ("17", 0)]
    assert text_set_sha256(c.text for c in ours) == "2195f2ef325ecbcd0ffd6330369af1017399d6f62cdf092ec02213f039590f1e"


def test_pile_procedure_reads_only_the_first_n_docs_and_is_deterministic():
    docs = pile_docs()
    params = PileParams(n_docs=25, n_sample=10, n_keep=4)
    first = select_pile(lambda: iter(docs), params)
    assert first == select_pile(lambda: iter(docs), params)
    assert [(c.doc_id, c.chunk_idx) for c in first] == [("23", 1), ("5", 0), ("1", 0), ("12", 2)]
    assert text_set_sha256(c.text for c in first) == "4e250e18772a3c5e4e374e546ebb6caac0b31bd5f2b641ec9c4cb564c56e359a"
    assert all(int(c.doc_id) < 25 for c in first)
    assert [c.text for c in first] == [t for _, _, t, _ in paper_pile_set(docs, 25, 10, 4)]
    # documents beyond n_docs change nothing
    assert select_pile(lambda: iter(docs[:25]), params) == first


def test_pile_procedure_rejects_a_document_without_pile_set_name():
    docs = [{"text": "z" * 600}]
    with pytest.raises(LlklError, match="Pile document 0"):
        select_pile(lambda: iter(docs), PileParams(n_docs=1, n_sample=1, n_keep=1))


# --- the Hub boundary, mocked --------------------------------------------------------------------


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """hf_hub_download replaced by a function serving the local corpus as two zstd shards."""
    zstandard = pytest.importorskip("zstandard")
    import huggingface_hub

    docs = pile_docs()
    files = {}
    for name, part in zip(shard_names(2), (docs[:30], docs[30:]), strict=True):
        path = tmp_path / name.replace("/", "_")
        raw = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in part).encode("utf-8")
        path.write_bytes(zstandard.ZstdCompressor().compress(raw))
        files[name] = path
    calls = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        return str(files[kwargs["filename"]])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    return calls


def test_hub_source_requests_the_train_shards_in_order(fake_hub):
    source = HubPile(revision="abc123")
    chosen = select_pile(source, PileParams(n_docs=40, n_sample=12, n_keep=5))
    assert {c["repo_id"] for c in fake_hub} == {REPO_ID} == {"monology/pile-uncopyrighted"}
    assert {c["repo_type"] for c in fake_hub} == {"dataset"}
    assert {c["revision"] for c in fake_hub} == {"abc123"}
    # the first pass reads all 40 documents; the second stops at the last picked one (in shard 00)
    assert [c["filename"] for c in fake_hub] == ["train/00.jsonl.zst", "train/01.jsonl.zst", "train/00.jsonl.zst"]
    assert source.used == ["train/00.jsonl.zst", "train/01.jsonl.zst"]
    assert text_set_sha256(c.text for c in chosen) == "2195f2ef325ecbcd0ffd6330369af1017399d6f62cdf092ec02213f039590f1e"


def test_hub_source_stops_at_the_shard_holding_the_last_document(fake_hub):
    select_pile(HubPile(), PileParams(n_docs=25, n_sample=10, n_keep=4))
    assert [c["filename"] for c in fake_hub] == ["train/00.jsonl.zst", "train/00.jsonl.zst"]


def test_cli_build_pile_10k_with_the_hub_mocked(fake_hub, tmp_path):
    out = tmp_path / "pile.parquet"
    args = ["texts", "build", "pile-10k", "--out", str(out), "--n-docs", "40", "--n-sample", "12", "--n-keep", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    df = read_texts(out)
    assert df["doc_id"].to_list() == ["11", "3", "20", "18", "17"]
    assert df["source"].to_list() == ["Jargon", "Multibyte", "Bible", "Multibyte", "Jargon"]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["sha256"] == "2195f2ef325ecbcd0ffd6330369af1017399d6f62cdf092ec02213f039590f1e"
    assert sidecar["corpora"]["hub"]["files"] == ["train/00.jsonl.zst", "train/01.jsonl.zst"]
    assert sidecar["recipe"]["max_bytes"] == 1024 and sidecar["recipe"]["min_bytes"] == 256


# --- import of the 2025 paper's texts-10k-pile.jsonl ---------------------------------------------


def test_import_of_the_2025_format(tmp_path):
    out = tmp_path / "pile-10k.parquet"
    result = runner.invoke(app, ["texts", "import", str(DATA / "modelmap-sample.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "N = 5 texts" in result.output
    df = read_texts(out)
    lines = [json.loads(line) for line in (DATA / "modelmap-sample.jsonl").read_text(encoding="utf-8").splitlines()]
    assert df["text"].to_list() == [item["text"] for item in lines]
    assert df["source"].to_list() == [item["pile_set_name"] for item in lines]
    assert df["doc_id"].to_list() == ["11", "3", "20", "18", "17"]
    assert df["chunk_idx"].to_list() == [0, 0, 1, 0, 0]
    assert df["n_bytes"].to_list() == [258, 374, 916, 1024, 1024]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["name"] == "pile-10k"
    # the same texts as the procedure makes from the local corpus
    assert sidecar["sha256"] == "2195f2ef325ecbcd0ffd6330369af1017399d6f62cdf092ec02213f039590f1e"
    assert sidecar["sha256"] == text_set_sha256(df["text"])


def test_import_orders_by_index(tmp_path):
    lines = (DATA / "modelmap-sample.jsonl").read_text(encoding="utf-8").splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join(reversed(lines)) + "\n\n", encoding="utf-8")
    assert read_modelmap(shuffled) == read_modelmap(DATA / "modelmap-sample.jsonl")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("modelmap-bad-json.jsonl", "modelmap-bad-json.jsonl:3: not valid JSON"),
        ("modelmap-missing-field.jsonl", "modelmap-missing-field.jsonl:2: missing field 'text'"),
    ],
)
def test_import_of_broken_files_fails_with_one_line_and_writes_nothing(tmp_path, name, message):
    from llkl_db.io.texts import write_texts

    out = tmp_path / "pile-10k.parquet"
    write_texts(out, ["a previous text set"], ["test"])  # a text set of ours: it may be replaced, but not broken
    previous = out.read_bytes()
    result = runner.invoke(app, ["texts", "import", str(DATA / name), "--out", str(out)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pile-10k.parquet"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"index": 0, "text": "a", "pile_set_name": "X"}', '{"index": 2, "text": "b", "pile_set_name": "X"}'],
            "'index' must run 0..1",
        ),
        (
            ['{"index": 0, "text": "a", "pile_set_name": "X"}', '{"index": 0, "text": "b", "pile_set_name": "X"}'],
            ":2: index 0 appears twice",
        ),
        (['{"index": "0", "text": "a", "pile_set_name": "X"}'], ":1: field 'index' must be int, got str"),
        (["[1, 2]"], ":1: expected a JSON object"),
        ([], "no texts"),
    ],
)
def test_import_rejects_bad_indices_and_types(tmp_path, lines, message):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LlklError, match=message):
        read_modelmap(path)


def test_import_of_a_missing_file(tmp_path):
    result = runner.invoke(app, ["texts", "import", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "nope.jsonl: cannot read" in result.stderr


# --- the mini set from the real installed corpora ------------------------------------------------


def corpora_present() -> bool:
    paths = CorpusPaths()
    wheel_ok = paths.wheel_dir.is_dir() and any(paths.wheel_dir.glob("gensim-4.4.0-*.whl"))
    return wheel_ok and all(p.exists() for p in (paths.bible_dir, paths.jargon_file, paths.fortunes_dir))


needs_corpora = pytest.mark.skipif(
    not corpora_present() and os.environ.get("LLKL_DB_REQUIRE_CORPORA") != "1",
    reason="offline corpora not installed (run builders/texts/install_corpora.sh)",
)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    from llkl_db.builders.texts.mini import build_mini

    out = tmp_path_factory.mktemp("mini") / "mini.parquet"
    return out, build_mini(out)


@needs_corpora
def test_mini_has_160_texts_40_per_domain_in_the_byte_range(mini):
    out, record = mini
    df = read_texts(out)
    assert df.height == record["n_texts"] == 160
    assert record["per_source"] == {"bible": 40, "fortunes": 40, "jargon": 40, "wikipedia": 40}
    assert df.group_by("source").len().sort("source")["len"].to_list() == [40, 40, 40, 40]
    assert 200 < df["n_bytes"].min() and df["n_bytes"].max() <= 600
    assert df["n_bytes"].to_list() == [len(t.encode("utf-8")) for t in df["text"]]
    assert record["mean_bytes"] == pytest.approx(df["n_bytes"].mean())
    assert record["sha256"] == text_set_sha256(df["text"])
    licences = dict(zip(df["source"], df["license"], strict=True))
    assert licences == {
        "wikipedia": wikipedia.LICENSE,
        "bible": bible.LICENSE,
        "jargon": jargon.LICENSE,
        "fortunes": fortunes.LICENSE,
    }
    assert df["doc_id"].null_count() == 0 and df["chunk_idx"].null_count() == 0
    # the domains are interleaved, not in blocks
    assert df["source"][:8].n_unique() > 1


@needs_corpora
def test_mini_records_the_corpus_versions(mini):
    out, record = mini
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar == record
    corpora = sidecar["corpora"]
    assert corpora["wikipedia"]["pypi"] == {"gensim": "4.4.0"}
    assert corpora["wikipedia"]["member"] == wikipedia.MEMBER
    assert corpora["bible"]["debian"] == {"sword-text-web": debian_version("sword-text-web")}
    assert corpora["jargon"]["debian"]["jargon-text"] == debian_version("jargon-text")
    assert set(corpora["fortunes"]["debian"]) == {"fortunes", "fortunes-min"}
    assert all(v is not None for c in corpora.values() for v in c.get("debian", {}).values())
    assert sidecar["recipe"]["seed"] == 42
    assert (sidecar["recipe"]["min_bytes"], sidecar["recipe"]["max_bytes"]) == (200, 600)


@needs_corpora
def test_mini_is_the_shipped_set_when_the_corpora_are_the_same(mini):
    out, record = mini
    shipped = json.loads(SHIPPED_MINI.with_suffix(".json").read_text())
    assert shipped["sha256"] == text_set_sha256(read_texts(SHIPPED_MINI)["text"])
    same_corpora = all(
        shipped["corpora"][s].get(k) == record["corpora"][s].get(k)
        for s in record["corpora"]
        for k in ("debian", "member_sha256")
    )
    if not same_corpora:
        pytest.skip("the installed corpora differ from those the shipped mini set was built from")
    assert record["sha256"] == shipped["sha256"] == "f53dc8b50d9b52f30dd93c709d97d08b5a1c8f3597e4cce298344ca388b61162"
    assert read_texts(out).equals(read_texts(SHIPPED_MINI))  # all columns, not only the texts


@needs_corpora
def test_cli_build_mini_with_parameters_is_deterministic(tmp_path):
    def build(seed: int, name: str) -> dict:
        args = [
            "texts",
            "build",
            "mini",
            "--per-source",
            "jargon=3",
            "--per-source",
            "fortunes=2",
            "--min-bytes",
            "100",
            "--max-bytes",
            "300",
            "--seed",
            str(seed),
            "--json",
            "--out",
            str(tmp_path / name),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    a, b = build(7, "a.parquet"), build(7, "b.parquet")
    assert a["sha256"] == b["sha256"]
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert a["per_source"] == {"fortunes": 2, "jargon": 3}
    df = read_texts(tmp_path / "a.parquet")
    assert df.height == 5 and 100 < df["n_bytes"].min() and df["n_bytes"].max() <= 300
    assert build(8, "c.parquet")["sha256"] != a["sha256"]


@needs_corpora
def test_wikipedia_paragraphs_are_prose(tmp_path):
    docs = list(wikipedia.read_wikipedia(wikipedia.find_wheel(CorpusPaths().wheel_dir)))
    assert len(docs) == 98
    assert docs[0][0] == "Anarchism"
    assert docs[0][1].startswith("Anarchism is a political philosophy that advocates self-governed societies")
    text = "\n\n".join(t for _, t in docs)
    assert "<ref" not in text and "{{" not in text and "[[" not in text and "==" not in text


@needs_corpora
def test_bible_books_have_no_markup_preface_or_glossary():
    docs = dict(bible.read_bible(CorpusPaths().bible_dir))
    assert len(docs) == 81
    assert docs["Gen"].startswith("In the beginning, God created the heavens and the earth.")
    assert docs["Rev"].endswith("The grace of the Lord Jesus Christ be with all the saints. Amen.")
    text = " ".join(docs.values())
    assert "<" not in text and "Preface" not in text and "Glossary" not in text


@needs_corpora
def test_fortunes_skip_dat_links_and_ascii_art():
    names = [p.name for p in fortunes.fortune_files(CorpusPaths().fortunes_dir)]
    assert "computers" in names and "ascii-art" not in names
    assert not any(n.endswith((".dat", ".u8")) for n in names)
    assert fortunes.entries("one\n%\n two  \nlines\n%\n\n%\n") == ["one", "two\nlines"]


def test_a_missing_corpus_is_a_one_line_error_naming_the_package(tmp_path):
    args = [
        "texts",
        "build",
        "mini",
        "--out",
        str(tmp_path / "m.parquet"),
        "--per-source",
        "jargon=1",
        "--jargon-file",
        str(tmp_path / "jargon.txt.gz"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "apt-get install -y jargon-text" in result.stderr
    result = runner.invoke(
        app,
        [
            "texts",
            "build",
            "mini",
            "--out",
            str(tmp_path / "m.parquet"),
            "--per-source",
            "wikipedia=1",
            "--gensim-wheel",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert "pip download --no-deps gensim==4.4.0" in result.stderr
    assert not (tmp_path / "m.parquet").exists()


def test_unknown_source_and_bad_per_source(tmp_path):
    out = str(tmp_path / "m.parquet")
    result = runner.invoke(app, ["texts", "build", "mini", "--out", out, "--per-source", "poetry=3"])
    assert result.exit_code == 1 and "unknown source(s) poetry" in result.stderr
    result = runner.invoke(app, ["texts", "build", "mini", "--out", out, "--per-source", "jargon"])
    assert result.exit_code == 1 and "expected SOURCE=COUNT" in result.stderr


def test_chunk_is_a_plain_record():
    c = Chunk("s", "d", 0, "t")
    assert c.license is None and c._replace(license="x").license == "x"


def test_install_script_is_present_and_executable():
    script = Path(__file__).parents[1] / "builders" / "texts" / "install_corpora.sh"
    assert os.access(script, os.X_OK)
    assert "sword-text-web jargon-text fortunes fortunes-min" in script.read_text()
    assert shutil.which("sh")
