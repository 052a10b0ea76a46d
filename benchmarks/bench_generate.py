"""Greedy generation speed: our KV cache vs recomputing the prefix vs transformers' cached generate.

All three decode the same prompt with the same weights (ours converted to transformers' layout
through our converter) and must produce the same tokens; the script asserts that, then prints the
seconds of each and the ratios. Targets (issue 13): cache >= 5x faster than recompute, and within
1.2x of transformers.

    python benchmarks/bench_generate.py                          # CPU, 1 thread, 256 new tokens (~30 s CPU)
    python benchmarks/bench_generate.py --device cuda --dtype bfloat16 --d-model 2048 --layers 16
"""

from __future__ import annotations

import argparse
import time

import torch

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.model.generate import generate
from olmo2_lit.weights.convert_hf import model_config_to_hf_config
from olmo2_lit.weights.state_dicts import native_to_hf


def _hf_model(cfg: ModelConfig, model: Transformer):
    from transformers import Olmo2Config, Olmo2ForCausalLM

    hf = Olmo2ForCausalLM(Olmo2Config(**model_config_to_hf_config(cfg, eos_token_id=0, pad_token_id=1)))
    hf.load_state_dict(native_to_hf(model.state_dict(), cfg))
    return hf.to(model.embeddings.weight.dtype).eval()


def _timed(fn, device: torch.device, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    parser.add_argument("--new", type=int, default=256, help="new tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs (cached paths)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = ModelConfig.tiny(
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        n_kv_heads=args.kv_heads,
        mlp_hidden=args.d_model * 4,
        vocab_size=args.vocab,
        max_sequence_length=args.prompt + args.new,
    )
    torch.manual_seed(0)
    model = Transformer(cfg).to(device=device, dtype=getattr(torch, args.dtype)).eval()
    hf = _hf_model(cfg, model)
    prompt = torch.randint(0, cfg.vocab_size, (args.prompt,)).tolist()
    ids = torch.tensor([prompt], device=device)
    suppress = list(range(cfg.vocab_size, cfg.padded_vocab_size)) or None

    def hf_generate():
        with torch.no_grad():
            out = hf.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=args.new,
                min_new_tokens=args.new,
                do_sample=False,
                pad_token_id=1,
                suppress_tokens=suppress,
            )
        return out[0, args.prompt :].tolist()

    def ours(use_cache: bool):
        return lambda: generate(model, [prompt], max_new_tokens=args.new, use_cache=use_cache)[0]

    t_cache, tok_cache = _timed(ours(True), device, args.repeats)
    t_hf, tok_hf = _timed(hf_generate, device, args.repeats)
    t_recompute, tok_recompute = _timed(ours(False), device, 1)
    assert tok_cache == tok_recompute, "cached and recomputed greedy tokens differ"
    same_as_hf = tok_cache == tok_hf
    print(
        f"{cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads / {cfg.kv_heads} kv, vocab "
        f"{cfg.vocab_size}; prompt {args.prompt} + {args.new} new tokens; {device} {args.dtype}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print(f"  ours, KV cache      {t_cache:8.3f} s  {args.new / t_cache:8.1f} tok/s")
    print(f"  ours, recompute     {t_recompute:8.3f} s  {args.new / t_recompute:8.1f} tok/s")
    print(f"  transformers cached {t_hf:8.3f} s  {args.new / t_hf:8.1f} tok/s  (same tokens: {same_as_hf})")
    print(f"  recompute / cache     = {t_recompute / t_cache:5.2f}x   (target >= 5)")
    print(f"  cache / transformers  = {t_cache / t_hf:5.2f}x   (target <= 1.2)")


if __name__ == "__main__":
    main()
