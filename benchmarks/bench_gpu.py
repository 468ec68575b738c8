"""GPU figures for the builder (run on a CUDA machine): tokens/s and model FLOPs utilisation of
`score_texts` for a 1B-class Llama in bfloat16, and a bitsandbytes 8-bit / 4-bit smoke check.

    pip install --no-build-isolation --no-deps -e . && python benchmarks/bench_gpu.py --out gpu.json

The model is randomly initialised with a TinyLlama-1.1B shape (no download needed): throughput
does not depend on the weights. MFU = 2 x params x tokens/s over the GPU's dense bf16 peak
(--peak-tflops, default 989 for an H100/H200 SXM).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def byte_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.add_special_tokens(["<bos>", "<eos>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--bytes", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM

    from llkl_db.builders.scoring import score_texts

    config = LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=2048,
    )
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    n_params = sum(p.numel() for p in model.parameters())
    tok = byte_tokenizer()
    rng = torch.Generator().manual_seed(0)
    letters = "abcdefghijklmnopqrstuvwxyz     "
    texts = [
        "".join(letters[i] for i in torch.randint(len(letters), (args.bytes,), generator=rng))
        for _ in range(args.texts)
    ]
    score_texts(model, tok, texts[:8], batch_size=8, progress=False)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = score_texts(model, tok, texts, batch_size=args.batch_size, progress=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens_per_s = float(result.n_tokens.sum()) / seconds
    report = {
        "gpu": torch.cuda.get_device_name(),
        "n_params": n_params,
        "tokens": int(result.n_tokens.sum()),
        "tokens_per_s": tokens_per_s,
        "mfu": 2 * n_params * tokens_per_s / (args.peak_tflops * 1e12),
        "final_batch_size": result.batch_size,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
    }
    try:
        import bitsandbytes  # noqa: F401

        from llkl_db.builders.models.variants import variant_load_kwargs

        report["bnb_kwargs_ok"] = all(bool(variant_load_kwargs(v, "cuda")) for v in ("bnb-8bit", "bnb-4bit"))
    except ImportError:
        report["bnb_kwargs_ok"] = None
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
