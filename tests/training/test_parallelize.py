"""``model.parallelize``: ``compile: auto`` decides by the training device, float8 converts the blocks' linear
layers only and refuses GPUs without float8 matmuls, and the options parse from the command line."""

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from olmo2_lit.lightning_cli import OLMo2CLI
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train import float8
from olmo2_lit.train.parallelize import ParallelizeConfig, parallelize

QUICKSTART = str(Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml")


def _compiled(model: Transformer) -> list[bool]:
    return [block._compiled_call_impl is not None for block in model.blocks]


def _ids(device: str = "cpu") -> torch.Tensor:
    return torch.randint(0, 256, (2, 8), device=device)


def test_compile_auto_stays_eager_on_cpu_and_true_compiles():
    auto = Transformer(ModelConfig.tiny())
    parallelize(auto, ParallelizeConfig())
    copied = copy.deepcopy(auto)  # before its first forward: decides on its own first forward
    auto(_ids())
    assert _compiled(auto) == [False, False]
    forced = Transformer(ModelConfig.tiny())
    parallelize(forced, ParallelizeConfig(compile=True))
    assert _compiled(forced) == [True, True]  # without running it
    assert _compiled(copied) == [False, False]


@pytest.mark.requires_cuda
def test_compile_auto_compiles_each_block_on_cuda():
    model = Transformer(ModelConfig.tiny())
    parallelize(model, ParallelizeConfig())
    model.cuda()
    assert _compiled(model) == [False, False]
    model(_ids("cuda"))
    assert _compiled(model) == [True, True]
    off = Transformer(ModelConfig.tiny())
    parallelize(off, ParallelizeConfig(compile=False))
    off.cuda()(_ids("cuda"))
    assert _compiled(off) == [False, False]


@pytest.mark.parametrize(
    "value, parsed", [(None, "auto"), ("false", False), ("true", True), ("auto", "auto")]
)
def test_compile_parses_from_the_command_line(value, parsed, capsys):
    import yaml

    extra = [] if value is None else ["--model.parallelize.compile", value]
    with pytest.raises(SystemExit):
        OLMo2CLI(args=["fit", "--config", QUICKSTART, *extra, "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["model"]["parallelize"]["compile"] == parsed


def test_float8_converts_the_blocks_linear_layers_only():
    from torchao.float8.float8_linear import Float8Linear

    model = Transformer(ModelConfig.tiny())
    keys = set(model.state_dict())
    parallelize(
        model, ParallelizeConfig(float8="tensorwise", float8_emulate=True, activation_checkpointing=True)
    )
    linears = {n: type(m) for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert len(linears) == 2 * 7 + 1  # q, k, v, out, 3 MLP per block; the output projection
    assert {n for n, t in linears.items() if t is not Float8Linear} == {"lm_head"}
    assert type(model.embeddings) is nn.Embedding
    assert set(model.state_dict()) == keys  # checkpoints and exports read the same keys


@pytest.mark.parametrize("capability", [None, (8, 0), (8, 6)])
def test_float8_refuses_gpus_without_float8_matmuls(monkeypatch, capability):
    monkeypatch.setattr(float8, "cuda_capability", lambda: capability)
    with pytest.raises(RuntimeError, match="compute capability >= 8.9") as err:
        parallelize(Transformer(ModelConfig.tiny()), ParallelizeConfig(float8="tensorwise"))
    assert "\n" not in str(err.value)
    assert ("no CUDA GPU" if capability is None else f"{capability[0]}.{capability[1]}") in str(err.value)


@pytest.mark.parametrize("capability", [(8, 9), (9, 0), (10, 0)])
def test_float8_accepts_gpus_with_float8_matmuls(monkeypatch, capability):
    monkeypatch.setattr(float8, "cuda_capability", lambda: capability)
    model = Transformer(ModelConfig.tiny())
    parallelize(model, ParallelizeConfig(float8="rowwise"))
    assert type(model.blocks[0].attention.w_q).__name__ == "Float8Linear"
