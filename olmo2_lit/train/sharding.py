"""FSDP2 (``fully_shard``) for the transformer, applied per block as OLMo-core does.

Used by ``OLMo2LitModule.configure_model`` when Lightning's ``ModelParallelStrategy`` provides a
device mesh. The model code itself never learns it is sharded.
"""

from __future__ import annotations

from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from olmo2_lit.model import Transformer


def shard_fsdp2(model: Transformer, mesh: DeviceMesh, *, param_dtype=None, reduce_dtype=None) -> None:
    """Shard each block, then the root (embeddings, final norm, LM head), over the data-parallel mesh.

    Args:
        model: the transformer, with real (not meta) parameters.
        mesh: the strategy's device mesh; its ``data_parallel`` dimension is used.
        param_dtype: dtype parameters are gathered in for compute (OLMo 2: bf16); None keeps them.
        reduce_dtype: dtype gradients are reduced in (OLMo 2: fp32); None keeps them.
    """
    dp_mesh = (
        mesh["data_parallel"] if mesh.mesh_dim_names and "data_parallel" in mesh.mesh_dim_names else mesh
    )
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    for block in model.blocks:
        fully_shard(block, mesh=dp_mesh, mp_policy=policy)
    fully_shard(model, mesh=dp_mesh, mp_policy=policy)
