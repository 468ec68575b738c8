"""Builder throughput on this machine: `llkl-db build`'s scorer against (a) the straightforward
loop of the 2025 code (batch 1, full log-softmax, a Python loop over tokens) and (b)
lm-evaluation-harness's loglikelihood_rolling, as a fraction of the forward-pass roofline, and
the peak memory of Gemma3 in float32 at batch 8 x 256 tokens.

    python benchmarks/bench_build.py [--texts 48] [--out results.json]

(b) needs `pip install lm-eval` in the same environment; without it that row is skipped.
Each method runs on the same model and texts in this one process; ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def gemm_rate(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GEMM FLOP/s of this machine, measured now (torch, square matmuls)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def straightforward_loop(model, tokenizer, texts: list[str]) -> tuple[float, int]:
    """The 2025 code's way (shimo-lab/modelmap, LikelihoodCalculator): one text at a time, the
    model's default forward (KV cache on), a full log-softmax, then a Python loop that reads each
    target's log-probability with a tensor index."""
    total_tokens = 0
    start = time.perf_counter()
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            seq = torch.tensor([[tokenizer.bos_token_id or tokenizer.eos_token_id, *ids]])
            logprobs = torch.log_softmax(model(seq, use_cache=True).logits, dim=-1)
            targets = seq[0, 1:]
            score = sum(float(logprobs[0, i, targets[i]]) for i in range(targets.shape[0]))
            assert score < 0
            total_tokens += len(ids)
    return time.perf_counter() - start, total_tokens


def ours(model, tokenizer, texts: list[str], batch_size: int) -> tuple[float, int]:
    from llkl_db.builders.scoring import score_texts

    result = score_texts(model, tokenizer, texts, batch_size=batch_size, progress=False)
    return result.seconds, int(result.n_tokens.sum())


def lm_eval_rolling(folder: Path, texts: list[str], batch_size: int) -> tuple[float, int] | None:
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return None
    lm = HFLM(pretrained=str(folder), batch_size=batch_size, device="cpu", dtype="float32")
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    start = time.perf_counter()
    lm.loglikelihood_rolling(requests, disable_tqdm=True)
    seconds = time.perf_counter() - start
    n_tokens = sum(len(lm.tok_encode(t)) for t in texts)
    return seconds, n_tokens


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def gemma_peak_memory(batch: int = 8, tokens: int = 256) -> dict:
    """Peak RSS while scoring `batch` texts of `tokens` tokens with Gemma3 fp32. The peak counter
    is reset after loading; the target compares the peak over the process's RSS before the model
    was loaded (Python, torch) with the size of the weights + 1 GB."""
    from llkl_db.builders.models import load_model, offline_model
    from llkl_db.builders.scoring import score_texts
    from llkl_db.textsets import load_text_set

    folder = offline_model("gemma3-270m")
    runtime = rss_bytes()
    loaded = load_model(str(folder), dtype="float32", device="cpu")
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    words = " ".join(load_text_set("mini").texts).split()
    texts = []
    for i in range(batch):
        ids = loaded.tokenizer(" ".join(words[i * 400 : (i + 1) * 400]), add_special_tokens=False)["input_ids"]
        texts.append(loaded.tokenizer.decode(ids[: tokens - 1]))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter (Linux)
    before = rss_bytes()
    score_texts(loaded.model, loaded.tokenizer, texts, batch_size=batch, progress=False)
    peak = peak_rss_bytes()
    return {
        "weights_gb": weights / 1e9,
        "rss_before_load_gb": runtime / 1e9,
        "rss_with_weights_gb": before / 1e9,
        "peak_gb": peak / 1e9,
        "peak_over_runtime_gb": (peak - runtime) / 1e9,
        "peak_over_runtime_minus_weights_gb": (peak - runtime - weights) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from llkl_db.builders.models import load_model, offline_model
    from llkl_db.textsets import load_text_set

    folder = offline_model(args.model)
    loaded = load_model(str(folder), dtype="float32", device="cpu")
    texts = load_text_set("mini").texts[: args.texts]
    n_params = sum(p.numel() for p in loaded.model.parameters())
    rate = gemm_rate()
    rows = {}
    ours(loaded.model, loaded.tokenizer, texts[:4], args.batch_size)  # warm-up
    for name, run in [
        ("ours", lambda: ours(loaded.model, loaded.tokenizer, texts, args.batch_size)),
        ("straightforward loop", lambda: straightforward_loop(loaded.model, loaded.tokenizer, texts)),
        ("lm-eval rolling", lambda: lm_eval_rolling(folder, texts, args.batch_size)),
        ("ours (again)", lambda: ours(loaded.model, loaded.tokenizer, texts, args.batch_size)),
    ]:
        got = run()
        if got is None:
            continue
        seconds, n_tokens = got
        rows[name] = {"seconds": seconds, "tokens": n_tokens, "tokens_per_s": n_tokens / seconds}
    roofline = rate / (2 * n_params)
    best = max(rows["ours"]["tokens_per_s"], rows["ours (again)"]["tokens_per_s"])
    report = {
        "model": args.model,
        "n_params": n_params,
        "texts": len(texts),
        "threads": torch.get_num_threads(),
        "gemm_gflops": rate / 1e9,
        "roofline_tokens_per_s": roofline,
        "methods": rows,
        "ours_vs_loop": best / rows["straightforward loop"]["tokens_per_s"],
        "ours_vs_lm_eval": best / rows["lm-eval rolling"]["tokens_per_s"] if "lm-eval rolling" in rows else None,
        "ours_fraction_of_roofline": best / roofline,
    }
    if not args.skip_memory:
        report["gemma3_fp32_batch8x256"] = gemma_peak_memory()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
