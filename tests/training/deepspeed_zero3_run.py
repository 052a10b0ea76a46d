"""Write a real DeepSpeed ZeRO-3 checkpoint of our module on CPU ranks (gloo), as Lightning's strategy does.

Run with ``python -m torch.distributed.run --nproc_per_node 2 deepspeed_zero3_run.py OUT`` and
``DS_ACCELERATOR=cpu``. Lightning's ``DeepSpeedStrategy`` itself refuses anything but CUDA, so this does
what it does around DeepSpeed's engine (lightning/pytorch/strategies/deepspeed.py, 2.6): the
LightningModule itself handed to ``deepspeed.initialize`` (state-dict keys ``model...``; Lightning < 2.1
wrapped it, adding ``_forward_module.``) with our AdamW parameter groups, and the save call of
``DeepSpeedStrategy.save_checkpoint`` (the Lightning
checkpoint dict without ``state_dict`` and ``optimizer_states`` as client state, tag ``checkpoint``).
The model is built as ``configure_model`` builds it (whole, on the CPU, no ``zero.Init``) and partitioned
by ``deepspeed.initialize``. Rank 0 writes the gathered full weights before training to ``OUT/initial.pt``
and after 2 steps to ``OUT/reference.pt``; the checkpoint goes to ``OUT/zero3.ckpt`` through
``save_directory_atomically``, as our ``DeepSpeedStrategy`` saves.
"""

import sys
from pathlib import Path

import deepspeed
import deepspeed.ops
import lightning
import torch
import torch.nn.functional as F

from olmo2_lit.model import ModelConfig
from olmo2_lit.train.lit_module import OLMo2LitModule
from olmo2_lit.train.optim import build_param_groups, olmo2_param_groups
from olmo2_lit.train.strategies import save_directory_atomically

out = Path(sys.argv[1])
# gloo does the collectives; skip DeepSpeed's shared-memory all-reduce, a C++ op compiled on first use
deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
deepspeed.init_distributed(dist_backend="gloo")
rank = torch.distributed.get_rank()

torch.manual_seed(0)
config = ModelConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden=64, vocab_size=256)
module = OLMo2LitModule(config=config)
module.configure_model()
optimizer = torch.optim.AdamW(
    build_param_groups(module.model, olmo2_param_groups()), lr=1e-2, betas=(0.9, 0.95), eps=1e-8
)
engine, *_ = deepspeed.initialize(
    model=module,
    optimizer=optimizer,
    config={
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": 3},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
    },
)


def gathered() -> dict[str, torch.Tensor]:
    params = list(engine.module.named_parameters())
    with deepspeed.zero.GatheredParameters([p for _, p in params]):
        return {name: p.detach().clone() for name, p in params}


initial = gathered()  # partitioned by deepspeed.initialize from the model configure_model built
if rank == 0:
    torch.save(initial, out / "initial.pt")
generator = torch.Generator().manual_seed(rank)
for _ in range(2):
    tokens = torch.randint(0, 256, (2, 17), generator=generator)
    logits = engine(tokens[:, :-1])  # OLMo2LitModule.forward: the logits
    loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
    engine.backward(loss)
    engine.step()

reference = gathered()
if rank == 0:
    torch.save(reference, out / "reference.pt")


class Ranks:  # what save_directory_atomically needs of a strategy
    global_rank = rank

    @staticmethod
    def broadcast(obj):
        return obj  # every rank has the same path

    @staticmethod
    def barrier(name=None):
        torch.distributed.barrier()


def lightning_save(checkpoint, path, storage_options):  # DeepSpeedStrategy.save_checkpoint's call
    engine.save_checkpoint(str(path), client_state=checkpoint, tag="checkpoint")


checkpoint = {"epoch": 0, "global_step": 2, "pytorch-lightning_version": lightning.__version__}
module.on_save_checkpoint(checkpoint)  # the "olmo2_lit" entry: model config, RNG states
# as our DeepSpeedStrategy saves: into the staging directory, renamed into place by rank 0
save_directory_atomically(Ranks, lightning_save, checkpoint, out / "zero3.ckpt", None)
