"""The builder's scores agree with an independent straightforward loop, whatever the batching."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_models import byte_tokenizer, reference_loglik, tiny_model  # noqa: E402

from llkl_db.builders.scoring import score_texts  # noqa: E402
from llkl_db.builders.scoring.windows import text_windows  # noqa: E402

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé text — with multi-byte characters: 日本語.",
    "a",
    "In the beginning God created the heavens and the earth. " * 2,
    "short one",
    "Hacker: a person who enjoys exploring the details of programmable systems.",
]


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "llama", "gemma"])
def test_matches_reference_loop_output_and_layers(arch):
    model, tok = tiny_model(arch), byte_tokenizer()
    result = score_texts(model, tok, TEXTS, layers=[0, 1], batch_size=4, progress=False)
    for i, text in enumerate(TEXTS):
        expected, n = reference_loglik(model, tok, text)
        assert result.n_tokens[i] == n
        assert result.loglik[None][i] == pytest.approx(expected, abs=1e-3)
        for layer in (0, 1):
            assert result.loglik[layer][i] == pytest.approx(reference_loglik(model, tok, text, layer)[0], abs=1e-3)
    assert result.bos_policy == "bos"


def test_padding_never_changes_a_score():
    model, tok = tiny_model("llama"), byte_tokenizer()
    one = score_texts(model, tok, TEXTS, batch_size=1, progress=False)
    many = score_texts(model, tok, TEXTS, batch_size=16, progress=False)
    np.testing.assert_allclose(one.loglik[None], many.loglik[None], atol=1e-4)


def test_eos_prefix_when_no_bos():
    model, tok = tiny_model("gpt2"), byte_tokenizer(with_bos=False)
    result = score_texts(model, tok, TEXTS[:2], progress=False)
    assert result.bos_policy == "eos"
    assert result.loglik[None][0] == pytest.approx(reference_loglik(model, tok, TEXTS[0])[0], abs=1e-3)


def test_long_texts_are_scored_in_windows_not_truncated():
    model, tok = tiny_model("gpt_neox"), byte_tokenizer()
    text = "A long text that does not fit in one window of sixteen tokens, so it is split. " * 2
    result = score_texts(model, tok, [text], max_length=16, stride=5, progress=False)
    assert result.n_tokens[0] == len(text.encode())
    # The reference with the full context differs (less context per window) but is close in scale.
    full = score_texts(model, tok, [text], progress=False)
    assert np.isfinite(result.loglik[None][0]) and result.loglik[None][0] != full.loglik[None][0]


@pytest.mark.parametrize("n_tokens,max_length,stride", [(1, 4, 2), (3, 4, 3), (10, 4, 1), (10, 4, 3), (37, 8, 5)])
def test_windows_score_every_token_exactly_once(n_tokens, max_length, stride):
    ids = list(range(100, 100 + n_tokens))
    windows = text_windows(7, ids, prefix_id=1, max_length=max_length, stride=stride)
    scored = [t for w in windows for t in w.targets[w.score_from :]]
    assert scored == ids
    for w in windows:
        assert len(w.input_ids) <= max_length and len(w.input_ids) == len(w.targets)
        assert list(w.input_ids[1:]) == list(w.targets[:-1])


def test_layer_out_of_range_is_a_clear_error():
    from llkl_db.errors import LlklError

    with pytest.raises(LlklError, match="out of range"):
        score_texts(tiny_model("llama"), byte_tokenizer(), ["x"], layers=[3], progress=False)


def test_out_of_memory_halves_the_batch_and_keeps_finished_work(monkeypatch):
    from llkl_db.builders.scoring import score as score_module

    real = score_module._score_batch
    sizes = []

    def limited(model, head, batch, *args):
        sizes.append(len(batch))
        if len(batch) > 3:
            raise torch.OutOfMemoryError("simulated")
        return real(model, head, batch, *args)

    model, tok = tiny_model("llama"), byte_tokenizer()
    expected = score_texts(model, tok, TEXTS, batch_size=1, progress=False)
    monkeypatch.setattr(score_module, "_score_batch", limited)
    result = score_texts(model, tok, TEXTS, batch_size=8, progress=False)
    assert result.batch_size == 3 and sizes == [6, 3, 3]
    np.testing.assert_allclose(result.loglik[None], expected.loglik[None], atol=1e-4)


def _skip_first_reference(model, tokenizer, text: str) -> tuple[float, int]:
    """The 2025 code for a tokenizer without BOS: the text's tokens alone, tokens 2..n scored."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) < 2:
        return 0.0, 0
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[i, ids[i + 1]] for i in range(len(ids) - 1))), len(ids) - 1


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_skip_first_scores_like_the_2025_code(arch):
    model, tok = tiny_model(arch), byte_tokenizer()
    bos = score_texts(model, tok, TEXTS, batch_size=4, progress=False)
    skip = score_texts(model, tok, TEXTS, batch_size=4, progress=False, bos_policy="skip-first")
    assert skip.bos_policy == "skip-first"
    np.testing.assert_array_equal(skip.n_tokens, bos.n_tokens - 1)  # one token fewer per text ("a": none)
    for i, text in enumerate(TEXTS):
        expected, n = _skip_first_reference(model, tok, text)
        assert skip.n_tokens[i] == n
        assert skip.loglik[None][i] == pytest.approx(expected, abs=1e-3)
    assert skip.loglik[None][2] == 0.0  # a one-token text has nothing left to score
    # the first token's share: the bos vector minus the skip-first one is each text's first-token
    # log-likelihood up to the changed context, and it is negative on every text with tokens
    assert (bos.loglik[None] < skip.loglik[None]).all()


def test_skip_first_windows_score_tokens_two_to_n_once():
    ids = list(range(10, 60))
    windows = text_windows(0, ids, None, max_length=16, stride=8)
    scored = [t for w in windows for t in w.targets[w.score_from :]]
    assert scored == ids[1:]
    with pytest.raises(Exception, match="bos_policy"):
        score_texts(tiny_model("llama"), byte_tokenizer(), ["x"], bos_policy="first", progress=False)
