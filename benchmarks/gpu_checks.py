"""GPU checks of the builders' CUDA paths (run on a CUDA machine, no download needed).

    python benchmarks/gpu_checks.py --out gpu-checks.json

A byte-level Llama (hidden 512, 6 layers, ~19 M parameters) is trained for a few hundred steps
on half of the shipped mini texts, saved as a local folder, and loaded back through the
builders' ``load_model`` on each path; the other half of the texts is scored with
``score_texts``. Reported, per path against float32 on the CPU: the largest per-text
difference in nats, and the KL estimate in bits per byte (``llkl_db.math.pair_kl``):
- float32 on CUDA (should agree with the CPU to rounding: TF32 must stay off),
- bfloat16 on CUDA (the builders' default on a GPU),
- bitsandbytes 8-bit and 4-bit (the KL-scale paper's quantizations), loaded through
  ``variant_load_kwargs``, which only CUDA machines can run,
- a gguf q4_0 round trip (also runs on CPU), as a yardstick for the bnb figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_gpu import byte_tokenizer  # noqa: E402


def mini_texts() -> list[str]:
    return pq.read_table(ROOT / "llkl_db" / "data" / "texts" / "mini.parquet").column("text").to_pylist()


def train(model, tok, texts: list[str], steps: int, device: str) -> float:
    """A few hundred AdamW steps of next-byte prediction on ``texts``; returns the last loss."""
    ids = [torch.tensor(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    stream = torch.cat(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        starts = torch.randint(0, len(stream) - 257, (32,), generator=gen)
        batch = torch.stack([stream[s : s + 257] for s in starts]).to(device)
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone()).loss
        # labels are shifted inside the model, so this trains next-byte prediction
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def score(folder: Path, texts: list[str], device: str, variant: str | None, dtype: str = "float32"):
    from llkl_db.builders.models.load import load_model
    from llkl_db.builders.scoring import score_texts

    loaded = load_model(str(folder), dtype=dtype, device=device, variant=variant)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = score_texts(loaded.model, loaded.tokenizer, texts, progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    info = {"device": loaded.device, "dtype": loaded.dtype, "variant": variant, "seconds": round(seconds, 3)}
    del loaded
    if device == "cuda":
        torch.cuda.empty_cache()
    info["tokens_per_s"] = round(float(result.n_tokens.sum()) / seconds)
    info["batch_size"] = result.batch_size
    return np.asarray(result.loglik[None], dtype=np.float64), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM

    from llkl_db.math import pair_kl

    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke run of this script only
    print("torch", torch.__version__, "device", device, flush=True)
    print("tf32 matmul allowed:", torch.backends.cuda.matmul.allow_tf32, flush=True)
    texts = mini_texts()
    train_texts, score_texts_ = texts[0::2], texts[1::2]
    tok = byte_tokenizer()
    config = LlamaConfig(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=len(tok),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device)
    start = time.perf_counter()
    last_loss = train(model, tok, train_texts, args.steps, device)
    report: dict = {
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "n_params": int(model.num_parameters()),
        "train_steps": args.steps,
        "train_seconds": round(time.perf_counter() - start, 1),
        "final_train_loss_nats_per_byte": round(last_loss, 3),
        "texts_scored": len(score_texts_),
    }
    mean_bytes = float(np.mean([len(t.encode()) for t in score_texts_]))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "byte-llama"
        model.to("cpu").save_pretrained(folder)
        tok.save_pretrained(folder)
        del model
        reference, ref_info = score(folder, score_texts_, "cpu", None)
        report["reference"] = ref_info | {"mean_bits_per_byte": float(-reference.mean() / mean_bytes / np.log(2))}
        paths = {
            "cuda-float32": ("cuda", None, "float32"),
            "cuda-bfloat16": ("cuda", None, "bfloat16"),
            "cuda-bnb-8bit": ("cuda", "bnb-8bit", "auto"),
            "cuda-bnb-4bit": ("cuda", "bnb-4bit", "auto"),
            "cpu-q4_0": ("cpu", "q4_0", "float32"),
        }
        for name, (device, variant, dtype) in paths.items():
            try:
                values, info = score(folder, score_texts_, device, variant, dtype)
            except Exception as exc:  # noqa: BLE001 - a check that fails is reported, the others still run
                report[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                print(name, report[name], flush=True)
                continue
            est = pair_kl(reference, values, mean_bytes)
            info |= {
                "max_abs_diff_nats_per_text": float(np.max(np.abs(values - reference))),
                "kl_bits_per_byte": float(est.kl_bpb),
                "kl_se_bits_per_byte": float(est.se_bpb),
            }
            report[name] = info
            print(name, json.dumps(info), flush=True)
    if torch.cuda.is_available():
        report["peak_cuda_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
