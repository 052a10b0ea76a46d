"""Our Transformer against transformers' Olmo2ForCausalLM and OLMo-core's Transformer, side by side.

All libraries get the same config, the same weights (benchmarks/peers.py says how each is built from
ours, and the OLMo-core key mapping), the same batch, precision and thread count. Before anything is
timed, each model's fp32 logits on the first row of the batch (up to 128 tokens) must match ours within
``--atol``; otherwise the script stops and says which library differs. OLMo-core is a peer where
``olmo_core`` imports (``ai2-olmo-core``); ``--peers`` picks a subset.

Modes:

- ``train`` (default): forward + CE and z-loss + backward + AdamW step (foreach on CPU, fused on CUDA),
  each library its own way: ours fuses the output projection with the loss; the others compute their
  logits and our ``lm_loss_sums`` on them.
- ``forward``: the forward pass to logits under ``torch.no_grad`` (ours ``model(x)``, transformers
  ``model(input_ids=x).logits``, OLMo-core ``model(x)``).
- ``memory``: the peak memory of a training step (after ``--warmup`` steps, so the Adam moments exist),
  above the memory in use right before the model is built (benchmarks/peak_memory.py). On CPU each
  library runs in its own fresh subprocess and the peak is that of its resident set.

``--compile`` compiles our model (per block, or ``--compile model`` whole), times our eager model beside
it (``olmo2_lit_eager``, so the ratio is compile's gain) and prints the compilation time: the logits
check and first step, less a compiled step. ``--compile_peers`` compiles the peers' whole models too.
``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`` gives the time of a first compile (no on-disk cache).

``train`` and ``forward`` run the libraries in interleaved rounds on CPU (A, B, C, A, B, C, ...), so
machine noise hits all of them, and print the median tokens/s of each and every ratio against ours with
its range over the rounds. On CUDA one model is on the device at a time (two 1B models and their Adam
state do not fit), so the rounds run one library after the other, and the peak memory is printed too.

    python benchmarks/bench_model.py                       # CPU: a small config, fp32 and bf16
    python benchmarks/bench_model.py --mode memory --precisions fp32
    python benchmarks/bench_model.py --preset olmo2_1b --seq 4096 --batch 4 --precisions bf16   # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Optional

import torch
from peak_memory import PeakMemory, release_freed
from peers import LOGITS_ATOL, PEERS, available_peers, check_logits

from olmo2_lit.model import ModelConfig, Transformer, flops_per_token
from olmo2_lit.train.peak_flops import peak_flops_per_device

Z_LOSS = 1e-5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(step, n: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / n


class Setup:
    """The weights, the batch and the reference logits every library is checked against."""

    def __init__(self, cfg: ModelConfig, args: argparse.Namespace, device: torch.device) -> None:
        self.cfg, self.args, self.device = cfg, args, device
        torch.manual_seed(0)
        self.weights = Transformer(cfg).state_dict()
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), device=device)
        self.x, self.y = ids[:, :-1], ids[:, 1:]
        self.x_check = self.x[:1, :128]
        self._reference = None
        self.first_step_s: dict[str, float] = {}  # includes torch.compile's compilation where on

    def reference(self) -> torch.Tensor:
        if self._reference is None:
            ours = PEERS["olmo2_lit"].build(self.cfg, self.weights).to(self.device)
            with torch.no_grad():
                self._reference = ours(self.x_check).float()
            del ours
        return self._reference

    def model(self, name: str, *, check: bool = True):
        """``name``'s model on the device, its logits checked against ours unless ``check`` is False."""
        model = PEERS[name].build(self.cfg, self.weights).to(self.device)
        scope = _compile_scope(self.args, name)
        if scope == "blocks":
            for block in model.blocks:
                block.compile()
        elif scope == "model":
            model.compile()
        if check:
            t0 = time.perf_counter()
            check_logits(name, model, self.x_check, self.reference(), atol=self.args.atol)
            self.first_step_s[name] = time.perf_counter() - t0  # a compiled model compiles here first
        return model

    def step(self, name: str, model, precision: str):
        """One call of the mode's unit of work for ``name`` (a training step, or a forward pass)."""
        device, peer, x, y = self.device, PEERS[name], self.x, self.y
        dtype = torch.bfloat16 if precision == "bf16" else None

        def autocast():
            return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

        if self.args.mode == "forward":
            model.eval()

            def forward():
                with torch.no_grad(), autocast():
                    peer.logits(model, x)

            return forward
        cuda = device.type == "cuda"
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda or None, foreach=not cuda or None)
        n_tokens = y.numel()

        def train():
            with autocast():
                ce, z = peer.train_loss(model, x, y, Z_LOSS)
            ((ce + z) / n_tokens).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return train

    def prepared(self, name: str, precision: str):
        """``name``'s step after ``--warmup`` steps; ``first_step_s`` keeps the check's and the first step's
        time (where compiled, both include compilation)."""
        step = self.step(name, self.model(name), precision)
        for i in range(self.args.warmup):
            t = _timed(step, 1, self.device)
            if i == 0:
                self.first_step_s[name] = self.first_step_s.get(name, 0.0) + t
        return step


def _ratios(values: dict[str, list[float]], label: str, *, higher_is_better: bool = True) -> None:
    if "olmo2_lit" not in values:
        return
    for name, vs in values.items():
        if name == "olmo2_lit":
            continue
        rs = sorted(a / b for a, b in zip(values["olmo2_lit"], vs))
        spread = f"rounds: {rs[0]:.2f}-{rs[-1]:.2f}; " if len(rs) > 1 else ""
        better = "higher" if higher_is_better else "lower"
        print(
            f"{label} olmo2_lit / {name} = {statistics.median(rs):.2f} ({spread}{better} is better for ours)"
        )


def bench(setup: Setup, names: list[str], precision: str) -> dict[str, list[float]]:
    """Tokens/s of each library's step in interleaved rounds; prints medians, MFU and ratios."""
    args, device = setup.args, setup.device
    setup.reference()  # before any peak-memory window opens
    times: dict[str, list[float]] = {}
    peak_mem: dict[str, float] = {}
    if device.type == "cuda":
        for name in names:
            mem = PeakMemory(device=device)
            mem.start()
            try:
                step = setup.prepared(name, precision)  # the model lives only inside this iteration
                times[name] = [_timed(step, args.steps, device) for _ in range(args.rounds)]
            except torch.OutOfMemoryError:
                print(f"{precision:5s} {name:15s} out of memory at batch {args.batch} x {args.seq}")
            peak_mem[name] = mem.peak_mib() / 1024
            step = None
            torch.cuda.empty_cache()
    else:
        ready = {name: setup.prepared(name, precision) for name in names}
        times = {name: [] for name in names}
        for _ in range(args.rounds):
            for name, step in ready.items():
                times[name].append(_timed(step, args.steps, device))
    rates = {name: [args.batch * args.seq / t for t in ts] for name, ts in times.items()}
    peak = peak_flops_per_device(device, precision)
    fpt = flops_per_token(setup.cfg, args.seq, training=args.mode == "train")
    for name, rs in rates.items():
        med = statistics.median(rs)
        mfu = f"{fpt * med / peak:.1%}" if peak else "n/a"
        mem = f"  peak {peak_mem[name]:.1f} GiB" if name in peak_mem else ""
        print(
            f"{precision:5s} {args.mode} {name:15s} {med:12,.0f} tok/s "
            f"(median of {len(rs)} rounds)  MFU {mfu}{mem}"
        )
    _ratios(rates, f"{precision:5s} {args.mode} tok/s")
    _compile_times(setup, times, precision)
    return rates


def _compile_scope(args: argparse.Namespace, name: str) -> Optional[str]:
    """What of ``name``'s model is compiled: ``blocks``, ``model`` or nothing (our eager copy never)."""
    if name == "olmo2_lit":
        return args.compile
    return "model" if args.compile_peers and name != "olmo2_lit_eager" else None


def _compile_times(setup: Setup, times: dict[str, list[float]], precision: str) -> None:
    """Compilation time of each compiled library: its logits check and first step less a timed step."""
    args = setup.args
    for name, ts in times.items():
        scope = _compile_scope(args, name)
        if scope and name in setup.first_step_s:
            first, steady = setup.first_step_s[name], statistics.median(ts)
            print(
                f"{precision:5s} {args.mode} {name:15s} torch.compile ({scope}): check + first step "
                f"{first:.1f} s, a compiled step {steady:.2f} s: compilation ~{first - steady:.1f} s"
            )


def measure_memory(setup: Setup, name: str, precision: str) -> float:
    """Peak MiB of ``name``'s training step above the memory in use right before its model is built.

    A throwaway model takes one step first, so the library's lazily imported modules and one-time
    kernel setup are in memory before the start (they are not the step's); its freed memory is handed
    back to the system (``release_freed``) so the measured run cannot reuse it unseen.
    """
    setup.step(name, setup.model(name, check=False), precision)()
    release_freed(setup.device)
    mem = PeakMemory(device=setup.device)
    mem.start()
    step = setup.step(name, setup.model(name, check=False), precision)
    for _ in range(max(setup.args.warmup, 1)):
        step()
    return mem.peak_mib()


def memory(setup: Setup, names: list[str], precision: str) -> None:
    """Each library's peak (CPU: one fresh subprocess per library) and the ratios against ours."""
    args, device = setup.args, setup.device
    for name in names:  # all of them compute our function, checked here, before any is measured
        check_logits(name, setup.model(name, check=False), setup.x_check, setup.reference(), atol=args.atol)
    peaks: dict[str, float] = {}
    for name in names:
        if device.type == "cuda":
            try:
                peaks[name] = measure_memory(setup, name, precision)
            except torch.OutOfMemoryError:
                print(f"{precision:5s} memory {name:15s} out of memory at batch {args.batch} x {args.seq}")
            torch.cuda.empty_cache()
            continue
        cmd = [sys.executable, __file__, *_child_args(args), "--peers", name, "--precisions", precision]
        # A fixed mmap threshold turns off glibc's dynamic one, which after the first large frees keeps
        # later large buffers on the heap, resident after they are freed: RSS then tracks live memory.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode or not lines:
            raise SystemExit(f"the memory run of {name} failed:\n{out.stderr[-3000:]}")
        peaks[name] = json.loads(lines[-1])["peak_mib"]
    n_params = sum(t.numel() for t in setup.weights.values())
    floor = n_params * 4 * 4 / 2**20  # fp32 weights, gradients and two Adam moments
    for name, mib in peaks.items():
        print(
            f"{precision:5s} memory {name:15s} peak {mib:9,.1f} MiB above the start "
            f"(weights + grads + Adam moments alone: {floor:,.1f} MiB)"
        )
    _ratios({k: [v] for k, v in peaks.items()}, f"{precision:5s} peak memory", higher_is_better=False)


def _child_args(args: argparse.Namespace) -> list[str]:
    out = ["--mode", "memory", "--child", "--seq", str(args.seq), "--batch", str(args.batch)]
    out += ["--warmup", str(args.warmup)] + (["--preset", args.preset] if args.preset else [])
    out += ["--compile", args.compile] if args.compile else []
    return out + (["--compile_peers"] if args.compile_peers else [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", default="train", choices=["train", "forward", "memory"])
    p.add_argument("--preset", default=None, help="a ModelConfig preset; default a small CPU-sized model")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (A, B, A, B, ...)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--compile",
        nargs="?",
        const="blocks",
        choices=["blocks", "model"],
        help="torch.compile our model: each block (the default, as model.parallelize.compile) or whole; "
        "prints the compilation time (first step less a compiled step) and, in train and forward, "
        "times our eager model beside it as olmo2_lit_eager",
    )
    p.add_argument("--compile_peers", action="store_true", help="torch.compile each peer's whole model")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--peers", nargs="+", default=None, choices=list(PEERS), help="default: all that import")
    p.add_argument("--atol", type=float, default=LOGITS_ATOL, help="max |logits - ours| allowed (fp32)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one memory measurement
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = (
        ModelConfig.preset_config(args.preset)
        if args.preset
        else ModelConfig(d_model=256, n_layers=4, n_heads=4, mlp_hidden=1024, vocab_size=8192)
    )
    names = args.peers or available_peers()
    missing = sorted(set(names) - set(available_peers()))
    if missing:
        raise SystemExit(f"--peers {' '.join(missing)}: not importable here (pip install ai2-olmo-core)")
    if args.compile and args.mode != "memory" and "olmo2_lit" in names:
        PEERS["olmo2_lit_eager"] = PEERS["olmo2_lit"]  # not compiled (only "olmo2_lit" is): the gain
        names.append("olmo2_lit_eager")
    setup = Setup(cfg, args, device)
    if args.child:
        (name,) = names
        print(json.dumps({"peer": name, "peak_mib": measure_memory(setup, name, args.precisions[0])}))
        return
    print(
        f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
        f"{args.preset or 'small'} config, batch {args.batch} x seq {args.seq}, "
        f"{torch.get_num_threads()} threads, mode {args.mode}, peers {', '.join(names)}"
    )
    for precision in args.precisions:
        if args.mode == "memory":
            memory(setup, names, precision)
        else:
            bench(setup, names, precision)


if __name__ == "__main__":
    main()
