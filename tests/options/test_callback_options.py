"""Non-default values of the options of the callbacks the CLI keys (``throughput``, ``preemption``,
``housekeeping``, ``nonfinite``) change what they do (tests/options_coverage.py)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from training_helpers import fit, tiny_args

from olmo2_lit.callbacks import throughput as throughput_module
from olmo2_lit.callbacks.housekeeping import Housekeeping
from olmo2_lit.callbacks.preemption import Preemption
from olmo2_lit.callbacks.throughput import TokenThroughput
from olmo2_lit.train import metrics as M


def _rates(window, monkeypatch) -> list[float]:
    """Tokens/s logged after each of five steps that end at t = 0, 1, 2, 4, 8 s with 100 tokens each."""
    times = iter([0.0, 1.0, 2.0, 4.0, 8.0])
    monkeypatch.setattr(throughput_module.time, "perf_counter", lambda: next(times))
    cb = TokenThroughput(**({} if window is None else {"window": window}))
    cb._peak, cb._started = None, 0.0
    logged = []
    module = SimpleNamespace(
        log=lambda name, value, **kw: logged.append(value) if name == M.TOKENS_PER_SEC else None
    )
    trainer = SimpleNamespace(loggers=[], global_step=0, world_size=1)
    monkeypatch.setattr(throughput_module, "rank_zero_info", lambda *a, **k: None)
    for k in range(1, 6):
        cb.on_step(trainer, module, SimpleNamespace(tokens_seen=100 * k))
    return logged


def test_throughput_window_is_the_steps_the_rate_is_averaged_over(monkeypatch):
    """``window: 2``: each rate is the tokens of the last 2 steps over their time, (500 - 300) / (8 - 2) at
    the fifth step; the default 10 averages over all five: (500 - 100) / 8 = 50."""
    assert _rates(2, monkeypatch) == pytest.approx([100.0, 100.0, 200 / 3, 200 / 6])
    assert _rates(None, monkeypatch)[-1] == pytest.approx(50.0)


def test_preemption_disabled_leaves_the_signal_handlers_alone():
    """``preemption.enabled: false``: SIGTERM keeps the handler it had (Lightning's own handling); enabled,
    the callback's handler is installed for the run."""
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    before = signal.getsignal(signal.SIGTERM)
    try:
        Preemption(enabled=False).on_train_start(trainer, None)
        assert signal.getsignal(signal.SIGTERM) is before
        on = Preemption()
        on.on_train_start(trainer, None)
        assert signal.getsignal(signal.SIGTERM) == on._handle
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("remove", [True, False])
def test_remove_empty_log_dir_decides_whether_a_failed_runs_log_dir_stays(tmp_path, remove):
    """A run that fails before its first step leaves a log directory with only its own files: removed by
    default, kept with ``housekeeping.remove_empty_log_dir: false``."""
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="olmo2")
    trainer = Trainer(accelerator="cpu", devices=1, logger=logger, enable_progress_bar=False)
    log_dir = Path(logger.log_dir)  # the version is chosen on first access
    log_dir.mkdir(parents=True)
    cb = Housekeeping(remove_empty_log_dir=remove)
    (log_dir / "config.yaml").write_text("seed_everything: 0\n")
    cb.on_exception(trainer, None, RuntimeError("failed at setup"))
    assert log_dir.exists() is not remove


def test_max_skips_stops_at_the_skip_past_it(shards, tmp_path):
    """Every step non-finite (NaN initial weights), ``action: skip`` with ``max_skips: 2``: steps 0 and 1 are
    skipped, the third non-finite step stops the run with its report (the default, 100, would skip all)."""
    extra = (
        "--model.config.init",
        "nan_init.NaNInit",
        "--nonfinite.action",
        "skip",
        "--nonfinite.max_skips",
        "2",
    )
    with pytest.raises(
        FloatingPointError, match=r"non-finite loss or gradient at step 2; see .*nonfinite_step0000002"
    ):
        fit(tiny_args(tmp_path, shards, max_steps=5, extra=extra))
    assert (tmp_path / "nonfinite_step0000002.json").is_file()


def test_merger_every_n_steps_and_dirpath_and_diagnostics_without_attention_logits(shards, tmp_path):
    """One tiny fit with two callbacks a run adds. ModelMerger ``every_n_steps: 2`` (last_n_steps 2, 5 steps)
    merges at steps 2 and 4, each the mean of that step's and the previous step's checkpointed weights,
    into ``dirpath`` (not the checkpoint directory, the default). Diagnostics ``interval: 2`` logs at steps
    0, 2, 4, and ``attention_logits: false`` leaves out the max attention logit (the default logs it) while
    the other per-layer values are logged."""
    import torch
    from stability_config import layer
    from training_helpers import load_weights, scalars

    from olmo2_lit.weights.pretrained import read_native

    callbacks = [
        {
            "class_path": "olmo2_lit.callbacks.weight_averaging.ModelMerger",
            "init_args": {"every_n_steps": 2, "last_n_steps": 2, "dirpath": str(tmp_path / "merged")},
        },
        {
            "class_path": "olmo2_lit.callbacks.diagnostics.Diagnostics",
            "init_args": {"interval": 2, "attention_logits": False},
        },
    ]
    extra = ("--checkpoint.every_n_train_steps", "1", *layer(tmp_path / "cbs.yaml", callbacks))
    fit(tiny_args(tmp_path, shards, max_steps=5, extra=extra))
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == [
        "step0000002-merged",
        "step0000004-merged",
    ]
    assert not list((tmp_path / "ckpt").glob("*-merged"))
    for m in (2, 4):
        _, merged = read_native(tmp_path / "merged" / f"step{m:07d}-merged")
        steps = [load_weights(tmp_path / "ckpt" / f"step{s:07d}.ckpt") for s in (m - 1, m)]
        for key, tensor in merged.items():
            mean = torch.stack([w[f"model.{key}"] for w in steps]).double().mean(0).float()
            torch.testing.assert_close(tensor, mean, rtol=1e-7, atol=0)
    assert [s for s, _ in scalars(tmp_path, "diag/act_rms/block_0")] == [0, 2, 4]
    assert scalars(tmp_path, "diag/attn_logit_max/block_0") == []


def test_max_rollbacks_is_how_many_rollbacks_a_run_may_take(tmp_path):
    """``max_rollbacks: 1``: a run that has rolled back once and spikes again stops with an error naming the
    count (the default, 10, would roll back again)."""
    from collections import deque
    from types import SimpleNamespace

    from olmo2_lit.callbacks.rollback import Rollback

    one_rank = SimpleNamespace(is_global_zero=True, world_size=1)  # rank 0 checks the files
    (tmp_path / "step0000004.ckpt").write_bytes(b"")
    cb = Rollback(spikes=1, window=5, max_rollbacks=1)
    cb.checkpoints, cb.rollbacks, cb.spike_steps = [(4, str(tmp_path / "step0000004.ckpt"))], 1, deque([6])
    with pytest.raises(RuntimeError, match="Rollback: 1 rollbacks already and spikes again at steps \\[6\\]"):
        cb._roll_back(one_rank, 6)
    default = Rollback(spikes=1, window=5)
    default.checkpoints, default.rollbacks, default.spike_steps = cb.checkpoints, 1, deque([6])
    with pytest.raises(AttributeError):  # past the count check, into the rollback itself (no datamodule)
        default._roll_back(one_rank, 6)
    assert default.rollbacks == 2


def test_predictions_tokenizer_adds_the_decoded_text(tmp_path):
    """``predictions.tokenizer``: each line holds the predicted ids and, decoded with that tokenizer, their
    text; without one (and no tokenizer recorded by the shards), the ids only."""
    import json

    import torch

    from olmo2_lit.callbacks.predictions import PredictionWriter
    from olmo2_lit.prepare.bpe import train_bpe

    tok = train_bpe(["def f(x):\n    return x + 1\n"] * 50, vocab_size=280)
    tok.save(str(tmp_path / "tok.json"))
    trainer = SimpleNamespace(datamodule=None, default_root_dir=str(tmp_path), world_size=1, global_rank=0,
                              is_global_zero=True)  # fmt: skip
    ids = torch.tensor([tok.encode("def f(x):").ids])
    for given, name in ((str(tmp_path / "tok.json"), "with.jsonl"), (None, "without.jsonl")):
        writer = PredictionWriter(path=str(tmp_path / name), tokenizer=given)
        writer.on_predict_start(trainer, None)
        writer.write_on_batch_end(trainer, None, ids, None, {"index": torch.tensor([7])}, 0, 0)
        writer.on_predict_end(trainer, None)
    (with_text,) = [json.loads(line) for line in (tmp_path / "with.jsonl").read_text().splitlines()]
    (ids_only,) = [json.loads(line) for line in (tmp_path / "without.jsonl").read_text().splitlines()]
    assert with_text == {"index": 7, "predicted_ids": ids[0].tolist(), "text": "def f(x):"}
    assert ids_only == {"index": 7, "predicted_ids": ids[0].tolist()}


def test_fsdp2_process_group_backend_is_the_strategys():
    """``process_group_backend: gloo`` is the backend the strategy initializes its process group with
    (the default None picks by device when the run starts)."""
    from olmo2_lit.train.strategies import FSDP2Strategy

    assert FSDP2Strategy(process_group_backend="gloo").process_group_backend == "gloo"
    assert FSDP2Strategy().process_group_backend is None


def test_model_summary_max_depth_is_the_depth_of_the_table(capsys):
    """``max_depth: 1`` lists the module's direct children only (``model``); the default 2 also theirs
    (``model.blocks``, not each block); 0 prints no table."""
    from olmo2_lit.callbacks.model_summary import OLMo2ModelSummary
    from olmo2_lit.model import ModelConfig
    from olmo2_lit.train.lit_module import OLMo2LitModule

    module = OLMo2LitModule(config=ModelConfig.tiny())
    module.configure_model()
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    module.trainer = trainer
    tables = {}
    for depth in (0, 1, 2):
        capsys.readouterr()
        OLMo2ModelSummary(max_depth=depth).on_fit_start(trainer, module)
        tables[depth] = capsys.readouterr().out
    assert tables[0] == ""
    assert "| model " in tables[1] and "| model.blocks " not in tables[1]
    assert "| model.blocks " in tables[2] and "| model.blocks.0 " not in tables[2]


def test_progress_bar_refresh_rate_is_in_optimizer_steps():
    """``refresh_rate: 3``: the bar moves at optimizer steps 3 and 6 only (the default, every step)."""
    from olmo2_lit.callbacks.progress import StepProgressBar

    def positions(**kw) -> list[int]:
        bar = StepProgressBar(**kw)
        shown = SimpleNamespace(n=0, set_postfix=lambda *a, **k: None, refresh=lambda: None)
        bar.train_progress_bar = shown
        bar.get_metrics = lambda trainer, module: {}
        out = []
        for step in range(1, 8):
            bar.on_train_batch_end(SimpleNamespace(global_step=step), None, None, None, 0)
            out.append(shown.n)
        return out

    assert positions(refresh_rate=3) == [0, 0, 3, 3, 3, 6, 6]
    assert positions() == [1, 2, 3, 4, 5, 6, 7]


def test_rollback_record_file_is_where_each_rollback_is_appended(tmp_path):
    """``record_file: logs/rb.json`` (relative: under default_root_dir) or an absolute path receives the
    record, each rollback appended; the default is ``rollbacks.json`` under default_root_dir."""
    import json

    from olmo2_lit.callbacks.rollback import Rollback

    trainer = SimpleNamespace(default_root_dir=str(tmp_path / "root"))
    for given, expected in (
        ("logs/rb.json", tmp_path / "root" / "logs" / "rb.json"),
        (str(tmp_path / "abs.json"), tmp_path / "abs.json"),
        (None, tmp_path / "root" / "rollbacks.json"),
    ):
        cb = Rollback(**({} if given is None else {"record_file": given}))
        cb._append_record(trainer, {"at_step": 10})
        cb._append_record(trainer, {"at_step": 20})
        assert json.loads(expected.read_text()) == {"rollbacks": [{"at_step": 10}, {"at_step": 20}]}
