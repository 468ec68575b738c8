"""The dataset card: built with huggingface_hub's DatasetCard, and every config it declares loads
with ``datasets.load_dataset`` from the local folder (offline), the default one without a name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from contrib_helpers import good_dataset

from llkl_db.card import ordinal, render_card
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.scores import write_scores
from llkl_db.io.tables import upsert_weight_distances


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A dataset folder with models, a model_scores and a weight_distances table, and its card."""
    root = good_dataset(tmp_path_factory.mktemp("card") / "ds", k=4)
    write_scores(root, [{"model_id": "org/model-000", "score": "mmlu", "value": 50.0, "source": "test"}])
    upsert_weight_distances(
        root,
        [
            {
                "model_id": "org/model-000",
                "revision_a": "step0",
                "step_a": 0,
                "revision_b": "step1",
                "step_b": 1,
                "sq_distance": 1.5,
                "n_params": 10,
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            }
        ],
    )
    folder = DatasetFolder(root)
    (root / "README.md").write_text(render_card(folder, folder.metadata, folder.entries(), repo_id="org/name"))
    return root


def front(root) -> dict:
    text = (root / "README.md").read_text()
    return yaml.safe_load(text[4:].partition("\n---\n")[0])


def test_card_front_matter_declares_a_default_config_a_licence_name_and_every_table(published):
    meta = front(published)
    assert meta["license"] == "other" and meta["license_name"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == ["models", "texts", "model_scores", "weight_distances"]
    assert configs["models"].get("default") is True and sum(bool(c.get("default")) for c in configs.values()) == 1
    body = (published / "README.md").read_text()
    assert " th percentile" not in body and "(2nd percentile)" in body
    assert "author    = {Kishino, Ryo and Takase, Yusuke and Oyama, Momose and Yamagiwa, Hiroaki and" in body
    assert "Findings of the Association for Computational Linguistics: ACL 2026" in body


def test_every_config_loads_with_datasets_offline(published, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cache = str(published.parent / "hf-cache")
    default = datasets.load_dataset(str(published), split="train", cache_dir=cache)  # no config name: the default
    assert default.num_rows == 4 and "loglik" in default.column_names
    expected = {"models": 4, "texts": 30, "model_scores": 1, "weight_distances": 1}
    for config in front(published)["configs"]:
        name = config["config_name"]
        loaded = datasets.load_dataset(str(published), name, split="train", cache_dir=cache)
        assert loaded.num_rows == expected[name], name


@pytest.mark.parametrize(
    "value, words", [(2, "2nd"), (1, "1st"), (3, "3rd"), (11, "11th"), (22, "22nd"), (2.5, "2.5th")]
)
def test_ordinal(value, words):
    assert ordinal(value) == words
