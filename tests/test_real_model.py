"""The builder on a real model: SmolLM2-135M-Instruct from its PyPI package (converted once and
cached), against the independent straightforward loop, output and logit-lens layers."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tiny_models import reference_loglik  # noqa: E402

from llkl_db.builders.models import load_model, offline_model  # noqa: E402
from llkl_db.builders.scoring import score_texts  # noqa: E402
from llkl_db.textsets import load_text_set  # noqa: E402


@pytest.fixture(scope="module")
def smollm2():
    return load_model(str(offline_model("smollm2-135m-instruct")), dtype="float32", device="cpu")


def test_smollm2_agrees_with_the_straightforward_loop(smollm2):
    texts = load_text_set("mini").texts[:4] + ["The quick brown fox jumps over the lazy dog."]
    result = score_texts(smollm2.model, smollm2.tokenizer, texts, layers=[10], batch_size=3, progress=False)
    for i, text in enumerate(texts):
        expected, n_tokens = reference_loglik(smollm2.model, smollm2.tokenizer, text)
        assert result.n_tokens[i] == n_tokens
        assert result.loglik[None][i] == pytest.approx(expected, abs=1e-3)
        assert result.loglik[10][i] == pytest.approx(
            reference_loglik(smollm2.model, smollm2.tokenizer, text, 10)[0], abs=1e-3
        )
    # A coherent model: about 4 nats per token or better on English text, far from uniform (10.8).
    assert -5.0 < result.loglik[None].sum() / result.n_tokens.sum() < -1.0
    assert result.loglik[10].sum() < result.loglik[None].sum()  # a middle layer predicts worse
