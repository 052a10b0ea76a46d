"""Checkpoints, callbacks and evaluation: bad input ends in one short message naming the culprit before
any step is spent, and nothing that existed before changes."""

import json
import os
import time

import numpy as np
import pytest
import torch
from conftest import VOCAB, assert_short_error, snapshot, tiny_fit, write_ids

from olmo2_lit.data.datamodule import PrepareSpec, TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.errors import REPORTED, ConfigError, DataError
from olmo2_lit.prepare.bpe import train_bpe
from olmo2_lit.train.checkpoint_publish import STAGING


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-step run (EOS id 0 recorded in the data state): its shards and last.ckpt."""
    from olmo2_lit.cli import main

    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    for i in range(2):
        write_ids(root / "shards" / f"part-{i}.npy", rng.integers(0, VOCAB, 2048))
    main(tiny_fit(root, root / "shards", "--data.eos_token_id=0"))
    return root / "shards", root / "ckpt" / "last.ckpt"


def test_garbage_ckpt_path_names_the_file_not_keyerror(tmp_path, trained, cli):
    """Guards against: a garbage --ckpt_path giving `KeyError: 101` from pickle."""
    shards, _ = trained
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(os.urandom(4096))
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards, f"--ckpt_path={junk}"))
    assert_short_error(code, out, "junk.ckpt: not a readable checkpoint")
    assert "KeyError: 101" not in out and snapshot(tmp_path) == before


def test_directory_as_ckpt_path_is_named(tmp_path, trained, cli):
    """Guards against: a directory passed as --ckpt_path ending in an IsADirectoryError traceback."""
    shards, _ = trained
    (tmp_path / "adir").mkdir()
    code, out = cli(tiny_fit(tmp_path, shards, f"--ckpt_path={tmp_path / 'adir'}"))
    assert_short_error(code, out, "adir: a directory with neither .metadata (torch distributed checkpoint)")


def test_missing_ckpt_path_is_an_error_not_a_fresh_run(tmp_path, trained, cli):
    """Guards against: a typo in --ckpt_path silently starting from scratch."""
    shards, _ = trained
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards, f"--ckpt_path={tmp_path / 'nope.ckpt'}"))
    assert code == 2 and "checkpoint not found" in out and "nope.ckpt" in out
    assert snapshot(tmp_path) == before


def test_resume_with_another_model_names_the_field(tmp_path, trained, cli):
    """Guards against: a config mismatch on resume arriving as a state_dict size-mismatch traceback."""
    shards, ckpt = trained
    code, out = cli(tiny_fit(tmp_path, shards, "--model.config.n_layers=2", f"--ckpt_path={ckpt}"))
    assert_short_error(code, out, str(ckpt), "n_layers: checkpoint has 1, config has 2")


def test_resume_on_another_shard_set_says_what_differs(tmp_path, trained, cli):
    """Guards against: 'part-00000.npy (61,260 tokens) was part-00000.npy (61,260 tokens)'."""
    _, ckpt = trained
    rng = np.random.default_rng(5)
    for i in range(2):
        write_ids(tmp_path / "other" / f"part-{i}.npy", rng.integers(0, VOCAB, 3072))
    code, out = cli(tiny_fit(tmp_path, tmp_path / "other", f"--ckpt_path={ckpt}", max_steps=2))
    assert_short_error(
        code,
        out,
        "shard part-0.npy holds 3,072 tokens, 2,048 in the checkpoint",
        "ignore_fingerprint_mismatch",
    )


def test_missing_samples_tokenizer_fails_before_the_first_step(tmp_path, shards, cli):
    """Guards against: PrintSamples loading its tokenizer in on_fit_end, after all steps are spent."""
    cb = [
        {
            "class_path": "olmo2_lit.callbacks.samples.PrintSamples",
            "init_args": {"tokenizer": str(tmp_path / "no-tokenizer.json")},
        }
    ]
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards, f"--trainer.callbacks={json.dumps(cb)}"))
    assert_short_error(code, out, "PrintSamples.tokenizer", "no-tokenizer.json")
    assert snapshot(tmp_path) == before and not (tmp_path / "ckpt").exists()


def test_samples_tokenizer_larger_than_the_vocab_fails_before_the_first_step(tmp_path, shards, cli):
    """Guards against: decoding samples with a tokenizer that is not the data's."""
    tok = train_bpe(["def f(x):\n    return x\n"] * 20, vocab_size=300)  # 256 bytes + EOS > 256
    tok.save(str(tmp_path / "big.json"))
    cb = [
        {
            "class_path": "olmo2_lit.callbacks.samples.PrintSamples",
            "init_args": {"tokenizer": str(tmp_path / "big.json")},
        }
    ]
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards, f"--trainer.callbacks={json.dumps(cb)}"))
    assert_short_error(code, out, "big.json", "vocab_size is 256")
    assert snapshot(tmp_path) == before


def test_lr_zero_is_warned_about(tmp_path, shards, cli, recwarn):
    """Guards against: `lr: 0` training silently without changing the weights."""
    code, _ = cli(tiny_fit(tmp_path, shards, "--model.optimizer.init_args.lr=0"))
    assert code == 0
    assert any("learning rate is 0" in str(w.message) for w in recwarn)


def test_validate_without_weights_says_so_loudly(tmp_path, shards, cli):
    """Guards against: `validate` without a checkpoint quietly scoring a random model."""
    args = [a.replace("fit", "validate") if a == "fit" else a for a in tiny_fit(tmp_path, shards)]
    args = [a for a in args if "max_steps" not in a and "checkpoint." not in a] + [
        f'--data.val_paths=["{shards}"]'
    ]
    code, out = cli([*args, "--trainer.limit_val_batches=1"])
    assert code == 0 and "RANDOMLY INITIALIZED" in out and "--ckpt_path" in out


def test_predict_writes_its_predictions_to_a_named_file(tmp_path, trained, cli):
    """Guards against: `predict` computing predictions and writing them nowhere."""
    shards, ckpt = trained
    args = [a for a in tiny_fit(tmp_path, shards) if "max_steps" not in a and "checkpoint." not in a]
    args[0] = "predict"
    code, out = cli(
        [
            *args,
            f'--data.test_paths=["{shards}"]',
            f"--ckpt_path={ckpt}",
            "--trainer.limit_predict_batches=3",
            "--data.eos_token_id=0",
        ]
    )
    target = tmp_path / "predictions.jsonl"
    assert code == 0 and str(target) in out
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == 3 * 2 and len(lines[0]["predicted_ids"]) == 32
    assert all(0 <= i < 256 for line in lines for i in line["predicted_ids"])


def test_stale_temp_files_of_a_killed_save_are_removed_and_nothing_else(tmp_path, shards, cli):
    """Guards against: `.last.ckpt.*.tmp` files and staged saves of a kill -9 during a save piling up
    forever, a checkpoint moved aside by an interrupted replacement being lost, and the clean-up deleting
    files that only look similar."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    stale = ckpt / ".last.ckpt.k3j9x_2a.tmp"
    kept = [ckpt / ".notes.tmp", ckpt / "mine.tmp", ckpt / ".last.ckpt.toolong123.tmp"]
    # in the staging directory of checkpoint saves: a killed sharded save (removed), and a last.ckpt whose
    # replacement was killed between its two renames (put back before Lightning looks for checkpoints)
    partial, replaced = ckpt / STAGING / "step0000004.ckpt", ckpt / STAGING / "last.ckpt.replaced"
    for p in [stale, *kept, partial / "__0_0.distcp", replaced / ".metadata"]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
        for q in (p, p.parent):
            os.utime(q, (time.time() - 3600, time.time() - 3600))
    code, out = cli(tiny_fit(tmp_path, shards))
    assert code == 0 and not stale.exists() and all(p.read_bytes() == b"partial" for p in kept)
    assert f"restored {ckpt / 'last.ckpt'}" in out and not replaced.exists() and not partial.exists()


def test_debug_shows_the_traceback(tmp_path, shards, cli):
    """Guards against: no way to get the full traceback of a reported error."""
    (shards / "part-1.npy").write_bytes(b"")
    with pytest.raises(DataError, match="part-1.npy: empty shard"):
        cli([*tiny_fit(tmp_path, shards), "--debug"])


def test_other_ranks_stay_quiet(tmp_path, shards, cli, monkeypatch):
    """Guards against: every rank printing the same error (one message, not one per rank)."""
    (shards / "part-1.npy").write_bytes(b"")
    monkeypatch.setenv("LOCAL_RANK", "1")
    code, out = cli(tiny_fit(tmp_path, shards))
    assert code == 2 and "empty shard" not in out


def test_ddp_layout_error_is_one_config_error():
    """Guards against: the quickstart with `--trainer.devices 2` failing with a traceback per rank: the
    layout error is a reported type, and names all three numbers."""
    dm = TokenShardDataModule(vocab_size=VOCAB, global_batch_size=16, micro_batch_size=16)
    with pytest.raises(
        ConfigError,
        match=r"global_batch_size 16 is not a multiple of micro_batch_size 16 x "
        r"world size 2 = 32",
    ) as info:
        dm.batch_plan.with_world_size(2)
    assert isinstance(info.value, REPORTED)


def test_quickstart_preparation_only_for_its_own_paths(tmp_path, shards):
    """Guards against: quickstart.yaml with your own train_sources re-preparing the stdlib corpus."""
    spec = PrepareSpec(output_dir=str(tmp_path / "quickstart"))
    dm = TokenShardDataModule(
        vocab_size=VOCAB,
        train_sources=[DataSource(paths=[str(shards)])],
        prepare_if_missing=spec,
        sequence_length=32,
        global_batch_size=4,
        micro_batch_size=2,
    )
    before = snapshot(tmp_path)
    dm.prepare_data()
    assert not (tmp_path / "quickstart").exists() and snapshot(tmp_path) == before


def test_to_hf_uses_the_training_data_eos(tmp_path, trained, cli):
    """Guards against: `convert to-hf` assuming dolma2's EOS/pad ids for a 256-token model whose
    checkpoint records its EOS (0)."""
    _, ckpt = trained
    code, out = cli(["convert", "to-hf", f"--checkpoint={ckpt}", f"--out_dir={tmp_path / 'hf'}"])
    assert code == 0, out
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["eos_token_id"], config["pad_token_id"]) == (0, 0)
    assert "eos_token_id 0 (the checkpoint's training data)" in out
    assert torch.load(ckpt, weights_only=False)["TokenShardDataModule"]["eos_token_id"] == 0


@pytest.mark.parametrize(
    "args, culprits",
    [
        (["--model.optimizer.init_args.lr=-1"], ["model.optimizer", "Invalid learning rate: -1.0"]),
        (["--model.optimizer.init_args.betas=[0.9, 1.5]"], ["model.optimizer", "beta"]),
        (["--trainer.devices=0"], ["devices='0'", "not a valid input"]),
        (["--trainer.val_check_interval=0"], ["trainer.val_check_interval must be > 0", "got 0"]),
        (["--trainer.accumulate_grad_batches=4"], ["accumulate_grad_batches is derived", "leave it unset"]),
        (["--checkpoint.every_n_train_steps=-1"], ["every_n_train_steps=-1", "change that setting"]),
        (["--trainer.gradient_clip_val=-1"], ["trainer.gradient_clip_val must be >= 0", "got -1"]),
        (["--trainer.gradient_clip_algorithm=value"], ["gradient_clip_algorithm 'value'", "set it to norm"]),
        (["--config", "{tmp}/recipe.yaml"], ["recipe.yaml: not valid YAML", "line 3", "fix the file"]),
    ],
    ids=[
        "negative_lr",
        "beta_over_1",
        "zero_devices",
        "zero_val_interval",
        "accumulate",
        "negative_ckpt_every",
        "negative_clip",
        "value_clip",
        "yaml_syntax",
    ],
)
def test_bad_fit_setting_is_one_line(tmp_path, shards, cli, args, culprits):
    """Guards against: a negative LR (torch's `ValueError: Invalid learning rate`) or `trainer.devices: 0`
    (Lightning's MisconfigurationException) ending in a traceback, `val_check_interval: 0` in a
    ZeroDivisionError after the first step, a negative gradient_clip_val silently flipping the gradients,
    and a recipe with a YAML syntax error reported as 'Problems parsing config ... in "<unicode
    string>"', naming no file."""
    (tmp_path / "recipe.yaml").write_text("trainer:\n  max_steps: 1\n   devices: 1\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = snapshot(tmp_path)
    code, out = cli(tiny_fit(tmp_path, shards, *args))
    assert_short_error(code, out, *culprits)
    assert snapshot(tmp_path) == before and not (tmp_path / "ckpt").exists()


def test_weights_directory_as_ckpt_path_points_to_init_from(tmp_path, shards, cli):
    """Guards against: a native (or HF) weights directory passed to --ckpt_path answered with 'a directory
    with neither .metadata ... nor latest', which does not say how to start from those weights."""
    from olmo2_lit.model import ModelConfig, Transformer
    from olmo2_lit.weights.export import save_native

    cfg = ModelConfig(vocab_size=VOCAB, d_model=16, n_layers=1, n_heads=2, mlp_hidden=32)
    save_native(Transformer(cfg), tmp_path / "native")
    code, out = cli(tiny_fit(tmp_path, shards, f"--ckpt_path={tmp_path / 'native'}"))
    assert_short_error(code, out, "native: a weights directory", f"--model.init_from {tmp_path / 'native'}")


def _held_out_args(tmp_path, shards, verb, *extra):
    args = [a for a in tiny_fit(tmp_path, shards) if "max_steps" not in a and "checkpoint." not in a]
    return [verb, *args[1:], *extra]


@pytest.mark.parametrize("verb", ["validate", "test", "predict"])
def test_held_out_verbs_without_held_out_data_say_so(tmp_path, trained, cli, verb):
    """Guards against: `validate` (or test, predict) with no data.val_paths exiting 0 after scoring no
    batch (Lightning's 'Total length of `list` across ranks is zero'), a result that looks like success."""
    shards, ckpt = trained
    code, out = cli(_held_out_args(tmp_path, shards, verb, f"--ckpt_path={ckpt}", "--data.eos_token_id=0"))
    field = "data.val_paths" if verb == "validate" else "data.test_paths"
    assert_short_error(code, out, field, "empty", "held-out shards")


def test_predict_does_not_replace_a_file_it_did_not_write(tmp_path, trained, cli):
    """Guards against: `--predictions.path notes.txt` (a typo) replacing the user's file with predictions;
    a predictions file from an earlier predict is still replaced."""
    shards, ckpt = trained
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    common = [f"--ckpt_path={ckpt}", f'--data.test_paths=["{shards}"]', "--trainer.limit_predict_batches=2"]
    code, out = cli(_held_out_args(tmp_path, shards, "predict", *common, f"--predictions.path={notes}"))
    assert_short_error(code, out, f"predictions.path {notes} exists and is not a predictions file")
    assert notes.read_text() == "my notes\n"
    target = tmp_path / "p.jsonl"
    for _ in range(2):  # the second run replaces the first's file
        code, out = cli(_held_out_args(tmp_path, shards, "predict", *common, f"--predictions.path={target}"))
        assert code == 0, out
    assert len(target.read_text().splitlines()) == 2 * 2  # 2 batches of micro_batch_size 2


def test_ckpt_path_last_with_nothing_saved_says_it_starts_fresh(tmp_path, shards, cli):
    """`--ckpt_path last` before any save is a fresh start (what a sweep's first run relies on), and the
    run says so in its own words, naming the directory it looked in; Lightning's warning alone hints at
    `save_last=True`, which does not apply."""
    code, out = cli(tiny_fit(tmp_path, shards, "--ckpt_path=last"))
    assert code == 0, out[-3000:]
    assert f"ckpt_path last: no last.ckpt in {tmp_path / 'ckpt'} yet; this run starts from step 0" in out
    assert (tmp_path / "ckpt" / "last.ckpt").exists()
