"""The initial weights are OLMo 2's init from the seeded CPU generator, bitwise, under every strategy.

Lightning calls ``configure_model`` inside the strategy's ``tensor_init_context``: DDP and single-device
strategies enter ``torch.device(root_device)`` (on a GPU the init drew from the CUDA generator: another
sample, so DDP started from another loss than FSDP/FSDP2 on an H100), FSDP/FSDP2 enter nothing (the CPU
generator), and with ``empty_init=True`` they enter ``torch.device("meta")``, after which Lightning's
materialization runs each layer's own ``reset_parameters`` (torch's defaults: N(0, 1) embeddings, Kaiming
linears), not OLMo 2's init. Guards against a build that follows whichever context Lightning set.
On CPU the "other device" is the meta device; ``test_ddp_and_fsdp2_start_from_the_same_weights_on_cuda``
checks the CUDA case on a GPU.
"""

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from lightning.fabric.utilities.init import _materialize_distributed_module
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy
from training_helpers import fit, fit_subprocess, tiny_args

from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train.lit_module import OLMo2LitModule

HERE = Path(__file__).resolve().parent
STRATEGIES = HERE.parents[1] / "experiments" / "strategies"
CONFIG = ModelConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden=64, vocab_size=256)


def _reference() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return Transformer(CONFIG.resolved()).state_dict()


def _configure(context, device: torch.device) -> dict[str, torch.Tensor]:
    """``configure_model`` as Lightning calls it, then Lightning's materialization of meta parameters."""
    module = OLMo2LitModule(config=CONFIG)
    torch.manual_seed(0)
    with context:
        module.configure_model()
    _materialize_distributed_module(module.model, device)  # what ModelParallelStrategy.setup does
    return module.model.state_dict()


def _assert_equal(weights, reference):
    assert weights.keys() == reference.keys()
    for name, ref in reference.items():
        assert weights[name].device.type == "cpu", name
        assert torch.equal(weights[name], ref), f"{name} differs from OLMo 2's init on the CPU"


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(lambda: nullcontext(), id="no-context"),
        pytest.param(
            lambda: ModelParallelStrategy().tensor_init_context(empty_init=True), id="fsdp2-empty-init"
        ),
        pytest.param(lambda: torch.device("meta"), id="meta"),
        # DDP builds under torch.device(root_device); the meta device stands in for a GPU here
        pytest.param(
            lambda: DDPStrategy(parallel_devices=[torch.device("meta")]).tensor_init_context(), id="ddp-root"
        ),
    ],
)
def test_configure_model_gives_olmo2_init_on_the_cpu_under_any_init_context(context):
    weights = _configure(context(), torch.device("cpu"))
    reference = _reference()
    _assert_equal(weights, reference)
    # and that reference is OLMo 2's init, not torch's defaults (std 0.02, truncated at 3 sigma)
    emb = reference["embeddings.weight"]
    assert emb.std().item() == pytest.approx(0.02 * 0.9866, rel=0.05) and emb.abs().max() <= 0.06


def _run(args, cwd, pythonpath=()):
    fit_subprocess(args, cwd, pythonpath=pythonpath)


def _initial_weights(root: Path, shards: Path, extra: tuple[str, ...], *, in_process: bool = False):
    out = root / "initial.pt"
    capture = ("--trainer.callbacks+=initial_weights.SaveInitialWeights", f"--trainer.callbacks.out={out}")
    args = tiny_args(root, shards, max_steps=1, extra=(*extra, *capture))
    if in_process:  # one process: no launcher, so no subprocess needed
        fit(args)
    else:
        _run(args, root.parent, pythonpath=(HERE,))
    return torch.load(out, weights_only=True)


@pytest.mark.slow
def test_two_rank_fsdp2_starts_from_the_one_process_weights(shards, tmp_path):
    """2 FSDP2 ranks (each its shard of the init) gather to the 1-process run's initial weights, bitwise."""
    one = _initial_weights(tmp_path / "one", shards, (), in_process=True)
    fsdp2 = ("--config", str(STRATEGIES / "fsdp2.yaml"), "--trainer.devices", "2")
    two = _initial_weights(tmp_path / "two", shards, fsdp2)
    _assert_equal(two, one)
    _assert_equal(one, _reference())  # and that is the seeded CPU init


@pytest.mark.requires_cuda
def test_ddp_and_fsdp2_start_from_the_same_weights_on_cuda(shards, tmp_path):
    """On a GPU, DDP (which builds under torch.device("cuda:0")) and FSDP2 start from the CPU init."""
    gpu = ("--trainer.accelerator", "gpu", "--trainer.devices", "1")
    ddp = _initial_weights(tmp_path / "ddp", shards, ("--config", str(STRATEGIES / "ddp.yaml"), *gpu))
    fsdp2 = _initial_weights(tmp_path / "fsdp2", shards, ("--config", str(STRATEGIES / "fsdp2.yaml"), *gpu))
    reference = _reference()
    _assert_equal(ddp, reference)
    _assert_equal(fsdp2, reference)
    cuda_context = DDPStrategy(parallel_devices=[torch.device("cuda", 0)]).tensor_init_context()
    _assert_equal(_configure(cuda_context, torch.device("cuda", 0)), reference)
