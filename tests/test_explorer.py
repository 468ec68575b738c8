"""The HTML explorer (``llkl-db map --out map.html``) in a real browser: search, neighbours that
match ``llkl-db nearest --json``, every point reachable by hovering (overlapping ones included),
legend, colourings, zoom, no console errors; and the map command's file and t-SNE behaviour.

The browser tests need Debian's chromium (/usr/bin/chromium) and Playwright's Python package;
they are skipped when either is missing, unless LLKL_DB_REQUIRE_BROWSER is set (the README's
test command sets it, so CI always runs them)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_dataset
from typer.testing import CliRunner

import llkl_db
from llkl_db.analysis import entry_map
from llkl_db.analysis.render import explorer_data
from llkl_db.cli.app import app
from llkl_db.io.scores import write_scores
from llkl_db.io.vectors import entry_id

N = 120
CHROMIUM = os.environ.get("LLKL_DB_CHROMIUM", "/usr/bin/chromium")


def _row(model, revision="main", **kw) -> dict:
    return {"entry_id": entry_id(model, revision, kw.get("layer"), kw.get("variant")), "model_id": model, **kw}


@pytest.fixture(scope="module")
def explorer_dataset(tmp_path_factory):
    """Runs of checkpoints, sizes, variants, layers, several models of other types, three exact
    duplicates (drawn on the same pixel) and a benchmark score for some models."""
    rng = np.random.default_rng(3)
    base = -300 + 60 * rng.standard_normal(N)
    rows, vectors = [], []
    walk = np.zeros(N)
    for step in (0, 100, 200, 400, 800, 1600):
        walk = walk + 2.0 * rng.standard_normal(N)
        rows.append(_row("org/run-160m", f"step{step}", step=step, model_type="gpt_neox", n_params=160 * 10**6))
        vectors.append(base + walk)
    fam = 8.0 * rng.standard_normal(N)
    for size, n_params in (("1b", 10**9), ("7b", 7 * 10**9)):
        rows.append(_row(f"org/fam-{size}", model_type="llama", n_params=n_params))
        vectors.append(base + fam + 3.0 * rng.standard_normal(N))
    for variant in ("q8_0", "q4_0"):
        rows.append(_row("org/fam-1b", variant=variant, model_type="llama", n_params=10**9))
        vectors.append(vectors[6] + 0.5 * rng.standard_normal(N))
    for layer in (0, 1):
        rows.append(_row("org/fam-1b", layer=layer, model_type="llama"))
        vectors.append(base + 30.0 * rng.standard_normal(N))
    same = base + 10.0 * rng.standard_normal(N)
    for i in range(3):  # identical vectors: one screen position, three entries
        rows.append(_row(f"dup/twin-{i}", model_type="twin"))
        vectors.append(same.copy())
    for i in range(8):
        rows.append(_row(f"other/m{i}-{i + 1}b", model_type=["x", "y"][i % 2], n_params=(i + 1) * 10**9))
        vectors.append(base + 20.0 * rng.standard_normal(N))
    root = write_dataset(tmp_path_factory.mktemp("explorer"), np.array(vectors), rows, clip_threshold=-1e6)
    write_scores(
        root,
        [
            {"model_id": f"other/m{i}-{i + 1}b", "score": "mmlu", "value": 0.3 + 0.05 * i, "source": "t"}
            for i in range(8)
        ],
    )
    return root


@pytest.fixture(scope="module")
def page_file(explorer_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "map.html"
    result = CliRunner().invoke(app, ["map", "--dataset", str(explorer_dataset), "--out", str(out), "--color", "kind"])
    assert result.exit_code == 0, result.output
    return out


# --- without a browser -------------------------------------------------------------------------


def test_explorer_data_neighbours_are_those_of_nearest(explorer_dataset):
    ds = llkl_db.open(explorer_dataset)
    m = entry_map(ds, neighbours=4)
    data = explorer_data(m)
    names = [c["name"] for c in data["colourings"]]
    assert names[:3] == ["family", "model_type", "kind"] and "score: mmlu" in names
    kinds = data["colourings"][2]
    assert set(kinds["labels"]) == {"model", "checkpoint", "variant", "layer"}
    assert data["runs"] == [[0, 1, 2, 3, 4, 5]]
    for i, eid in enumerate(data["ids"]):
        table = ds.nearest(eid, k=4).table
        lo, hi = data["nb_offsets"][i], data["nb_offsets"][i + 1]
        assert [data["ids"][j] for j in data["nb_index"][lo:hi]] == table["entry_id"].to_list()
        assert data["nb_kl"][lo:hi] == [f"{v:.4g}" for v in table["kl_bpb"]]
        assert [data["levels"][j] for j in data["nb_level"][lo:hi]] == table["level"].to_list()


def test_map_never_overwrites_an_unnamed_file(explorer_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "map.png").write_bytes(b"mine")
    result = CliRunner().invoke(app, ["map", "--dataset", str(explorer_dataset)])
    assert result.exit_code != 0 and result.output.startswith("Error:") and "--out" in result.output
    assert (tmp_path / "map.png").read_bytes() == b"mine"


def test_tsne_says_which_implementation_ran(explorer_dataset, monkeypatch):
    pytest.importorskip("openTSNE")
    ds = llkl_db.open(explorer_dataset)
    assert entry_map(ds, method="tsne").method_note.startswith("t-SNE: openTSNE")
    monkeypatch.setitem(sys.modules, "openTSNE", None)  # as if not installed
    fallback = entry_map(ds, method="tsne")
    assert fallback.method_note.startswith("t-SNE: exact numpy") and fallback.xy.shape == (len(ds), 2)
    assert fallback.to_dict()["method_note"] == fallback.method_note


def test_tsne_note_on_stderr(explorer_dataset, tmp_path):
    out = tmp_path / "t.html"
    result = CliRunner().invoke(
        app, ["map", "--dataset", str(explorer_dataset), "--method", "tsne", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "t-SNE: " in result.stderr
    assert json.loads(result.stdout)["method_note"].startswith("t-SNE: ")
    assert "t-SNE: " in out.read_text()


# --- in a real browser -------------------------------------------------------------------------


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("LLKL_DB_REQUIRE_BROWSER"):
            pytest.fail(f"LLKL_DB_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(f"browser tests: {missing}")
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, page_file):
    pg = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(page_file.as_uri())
    pg.wait_for_function("window.explorer && window.explorer.ready")
    yield pg
    assert errors == [], errors  # the console shows no errors
    pg.close()


def test_search_finds_an_entry_and_lists_its_nearest_as_the_cli_does(page, explorer_dataset):
    page.fill("#search", "FAM-7")
    assert page.locator("#results li").all_inner_texts() == ["org/fam-7b@main"]
    page.click("#results li")
    assert page.inner_text("#selected").startswith("org/fam-7b@main")
    rows = page.locator("#neighbours tr")
    shown = [
        {
            "id": rows.nth(i).locator("td.id").inner_text(),
            "kl": rows.nth(i).locator("td.kl").inner_text(),
            "se": rows.nth(i).locator("td.se").inner_text(),
            "level": rows.nth(i).locator("td.level").inner_text(),
        }
        for i in range(rows.count())
    ]
    cli = CliRunner().invoke(app, ["nearest", "org/fam-7b@main", "-k", "10", "--json", "-d", str(explorer_dataset)])
    expected = json.loads(cli.stdout)["neighbours"]
    assert [r["id"] for r in shown] == [r["entry_id"] for r in expected] and len(shown) == 10
    assert [r["kl"] for r in shown] == [f"{r['kl_bpb']:.4g}" for r in expected]
    assert [r["se"] for r in shown] == [f"± {r['se_bpb']:.2g}" for r in expected]
    assert [r["level"] for r in shown] == [r["level"] for r in expected]
    # Enter selects the first match; a neighbour row selects that neighbour.
    page.fill("#search", "dup/twin-1")
    page.press("#search", "Enter")
    assert page.inner_text("#selected").startswith("dup/twin-1@main")
    page.locator("#neighbours tr").first.click()
    assert page.inner_text("#selected").split()[0] in ("dup/twin-0@main", "dup/twin-2@main")


def test_every_point_can_be_hovered_overlapping_ones_included(page):
    page.evaluate("window.explorer.resetView()")  # fit all: far points may lie outside the first view
    ids = page.evaluate("window.explorer.ids")
    missed = []
    for i, eid in enumerate(ids):
        x, y = page.evaluate(f"window.explorer.screenPosition({i})")
        page.mouse.move(x, y)
        under = page.locator("#under li").all_inner_texts()
        if eid not in under:
            missed.append(eid)
    assert missed == []
    x, y = page.evaluate(f"window.explorer.screenPosition({ids.index('dup/twin-0@main')})")
    page.mouse.move(x, y)
    twins = [e for e in page.locator("#under li").all_inner_texts() if e.startswith("dup/")]
    assert sorted(twins) == ["dup/twin-0@main", "dup/twin-1@main", "dup/twin-2@main"]
    page.mouse.click(x, y)  # a click selects the point under the cursor
    assert page.inner_text("#selected").startswith("dup/twin-")


def test_colour_select_legend_toggle_and_zoom(page):
    options = page.locator("#colorby option").all_inner_texts()
    assert options[:3] == ["family", "model_type", "kind"] and "score: mmlu" in options
    assert page.eval_on_selector("#colorby", "s => s.options[s.selectedIndex].text") == "kind"
    assert set(page.locator("#legend li").all_inner_texts()) == {
        "checkpoint (6)",
        "model (13)",
        "variant (2)",
        "layer (2)",
    }
    page.select_option("#colorby", label="score: mmlu")
    assert any(t.startswith("(none)") for t in page.locator("#legend li").all_inner_texts())
    page.select_option("#colorby", label="kind")
    ids = page.evaluate("window.explorer.ids")
    layer = ids.index("org/fam-1b@main:L0")
    page.locator("#legend li", has_text="layer").click()  # hide the layers
    x, y = page.evaluate(f"window.explorer.screenPosition({layer})")
    page.mouse.move(x, y)
    assert "org/fam-1b@main:L0" not in page.locator("#under li").all_inner_texts()
    page.locator("#legend li", has_text="layer").click()
    page.mouse.move(x + 1, y)
    assert "org/fam-1b@main:L0" in page.locator("#under li").all_inner_texts()
    a = page.evaluate("[window.explorer.screenPosition(0), window.explorer.screenPosition(1)]")
    page.mouse.move(640, 400)
    page.mouse.wheel(0, -400)  # zoom in around the cursor
    page.wait_for_timeout(50)
    b = page.evaluate("[window.explorer.screenPosition(0), window.explorer.screenPosition(1)]")
    assert np.hypot(*np.subtract(b[0], b[1])) > 1.5 * np.hypot(*np.subtract(a[0], a[1]))
    page.mouse.move(600, 400)
    page.mouse.down()
    page.mouse.move(700, 450, steps=5)  # drag to pan
    page.mouse.up()
    c = page.evaluate("window.explorer.screenPosition(0)")
    assert c[0] == pytest.approx(b[0][0] + 100, abs=1) and c[1] == pytest.approx(b[0][1] + 50, abs=1)


def test_hostile_ids_stay_text_in_the_browser(browser, tmp_path):
    evil = ["<img src=x onerror=window.pwned=1>", "</script><script>window.pwned=2</script>", "a\u2028b"]
    rng = np.random.default_rng(0)
    rows = [_row(m, model_type="<b>t</b>") for m in evil]
    root = write_dataset(tmp_path / "ds", -300 + rng.standard_normal((3, 40)), rows)
    out = tmp_path / "evil.html"
    result = CliRunner().invoke(app, ["map", "--dataset", str(root), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(out.as_uri())
    pg.wait_for_function("window.explorer && window.explorer.ready")
    pg.fill("#search", "img")
    pg.press("#search", "Enter")
    assert pg.inner_text("#selected").startswith(evil[0] + "@main")
    assert pg.evaluate("window.pwned") is None and pg.locator("img").count() == 0 and errors == []
    assert pg.evaluate("window.explorer.ids") == [f"{m}@main" for m in evil]
    pg.close()
