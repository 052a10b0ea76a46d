"""``olmo2-lit soup``: exact averages over .ckpt / native / HF inputs, weights, and its errors."""

import pytest
import torch

from olmo2_lit.cli import main
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.weights.export import export_hf, save_native
from olmo2_lit.weights.pretrained import read_native

CFG = ModelConfig.tiny(n_kv_heads=2)


def _model(seed: int, cfg: ModelConfig = CFG) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(cfg)


def _ckpt(model: Transformer, path):
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "olmo2_lit": {"model_config": model.config.to_dict()}}, path)
    return path


def test_soup_of_two_is_their_exact_average(tmp_path):
    """A .ckpt and a native dir: every tensor equals (a + b) / 2 computed in float32, bit for bit."""
    a, b = _model(0), _model(1)
    save_native(b, tmp_path / "b")
    main(["soup", str(_ckpt(a, tmp_path / "a.ckpt")), str(tmp_path / "b"), "--out", str(tmp_path / "s")])
    cfg, soup = read_native(tmp_path / "s")
    assert cfg == CFG
    sa, sb = a.state_dict(), b.state_dict()
    assert soup.keys() == sa.keys()
    for key in sa:
        assert soup[key].dtype == torch.float32
        assert torch.equal(soup[key], (sa[key] + sb[key]) / 2), key


def test_weighted_soup_of_three_including_an_hf_dir(tmp_path):
    """Weights 1, 2, 1 (normalized) over .ckpt, native and HF inputs equal the hand-weighted mean."""
    models = [_model(s) for s in range(3)]
    _ckpt(models[0], tmp_path / "a.ckpt")
    save_native(models[1], tmp_path / "b")
    export_hf(models[2], CFG, tmp_path / "c", dtype="float32", eos_token_id=1, pad_token_id=0)
    main(
        [
            "soup",
            str(tmp_path / "a.ckpt"),
            str(tmp_path / "b"),
            str(tmp_path / "c"),
            "--out",
            str(tmp_path / "s"),
            "--weights",
            "[1, 2, 1]",
        ]
    )
    _, soup = read_native(tmp_path / "s")
    sds = [m.state_dict() for m in models]
    for key in soup:
        expected = 0.25 * sds[0][key].double() + 0.5 * sds[1][key].double() + 0.25 * sds[2][key].double()
        torch.testing.assert_close(soup[key], expected.float(), rtol=0, atol=0)


def test_soup_errors(tmp_path, capsys):
    """A different architecture names the input and the first mismatching tensor; bad weights name
    the flag; an existing output dir is not touched. (``--debug``: the error itself, not its one-line
    report, so its type and whole message can be checked.)"""
    save_native(_model(0), tmp_path / "a")
    save_native(_model(1, CFG.replace(n_kv_heads=4)), tmp_path / "mha")
    with pytest.raises(
        ValueError,
        match=r"mha does not have the architecture of .*a: tensor "
        r"'blocks.0.attention.k_norm.weight' has shape \(32,\), expected \(16,\)",
    ):
        main(["soup", str(tmp_path / "a"), str(tmp_path / "mha"), "--out", str(tmp_path / "s"), "--debug"])
    save_native(_model(1, CFG.replace(rope_theta=10_000.0)), tmp_path / "theta")
    with pytest.raises(ValueError, match="rope_theta"):
        main(["soup", str(tmp_path / "a"), str(tmp_path / "theta"), "--out", str(tmp_path / "s"), "--debug"])
    with pytest.raises(ValueError, match="--weights has 3 values for 2 checkpoints"):
        main(
            [
                "soup",
                str(tmp_path / "a"),
                str(tmp_path / "a"),
                "--out",
                str(tmp_path / "s"),
                "--weights",
                "[1, 1, 1]",
                "--debug",
            ]
        )
    assert not (tmp_path / "s").exists()
    with pytest.raises(SystemExit) as exit_info:  # olmo2-lit reports it in a line, exit status 2
        main(["soup", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "mha")])
    assert exit_info.value.code == 2 and "not empty" in capsys.readouterr().err
