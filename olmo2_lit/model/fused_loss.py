"""The output projection fused with cross-entropy and z-loss, chunked over tokens.

``logits = hidden @ weight.T`` is computed a chunk of tokens at a time; each chunk's log-sum-exp
serves both the CE and the z-loss (one pass instead of two), and the backward writes
``dlogits = g_ce * (softmax - onehot) + g_z * 2 * z * lse * softmax`` straight from the recomputed
chunk. The full fp32 logits (B·T × V) and their gradient never exist at once: for the 1B at micro
batch 4 × 4096 they alone are 6.6 GB (on CPU the two separate passes of CE and z-loss over the logits
were half the step). The log-sum-exp is computed in place on the chunk (no (chunk, V) temporaries, which on
CPU cost their page faults), and when a single chunk holds every token (small batches and vocabularies)
its ``exp(logits - max)`` is kept for the backward instead of recomputed.

Numerically it is the OLMo 2 loss (OLMo-core ``cross_entropy_loss`` with ``z_loss_multiplier``):
matmuls follow the surrounding autocast (bf16 under ``bf16-mixed``), everything after them is fp32.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
#: Logit elements per chunk (fp32): 2^26 = 256 MB, ~650 tokens at the dolma2 vocab.
CHUNK_ELEMENTS = 1 << 26


class _FusedLMLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, z_loss_multiplier: float, chunk: int):
        device = hidden.device.type
        ctx.autocast = torch.is_autocast_enabled(device)
        ctx.autocast_dtype = torch.get_autocast_dtype(device)
        valid = labels != IGNORE_INDEX
        ce = hidden.new_zeros((), dtype=torch.float32)
        z = hidden.new_zeros((), dtype=torch.float32)
        lse_all = hidden.new_empty(labels.shape, dtype=torch.float32)
        ctx.kept = None
        for start in range(0, hidden.shape[0], chunk):
            sl = slice(start, start + chunk)
            logits = (hidden[sl] @ weight.t()).float()  # (chunk, V)
            target = logits.gather(1, labels[sl].clamp(min=0).unsqueeze(1)).squeeze(1)
            # log-sum-exp as torch.logsumexp computes it (max, shift, exp, sum, log), but in place:
            # no (chunk, V) temporaries (on CPU each fresh 100+ MB buffer costs its page faults).
            shift = logits.amax(dim=-1, keepdim=True)
            exp = logits.sub_(shift).exp_()  # exp(logits - max)
            total = exp.sum(dim=-1)
            lse = total.log() + shift.squeeze(1)
            m = valid[sl]
            ce += ((lse - target) * m).sum()
            z += (lse.square() * m).sum()
            lse_all[sl] = lse
        if hidden.shape[0] <= chunk:  # one chunk holds everything: keep exp(logits - max), no recompute
            ctx.kept = (exp, total)
        ctx.save_for_backward(hidden, weight, labels, lse_all)
        ctx.z_loss_multiplier, ctx.chunk = z_loss_multiplier, chunk
        return ce, z * z_loss_multiplier

    @staticmethod
    def backward(ctx, grad_ce, grad_z):
        hidden, weight, labels, lse_all = ctx.saved_tensors
        zm, chunk = ctx.z_loss_multiplier, ctx.chunk
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        with torch.autocast(hidden.device.type, dtype=ctx.autocast_dtype, enabled=ctx.autocast):
            for start in range(0, hidden.shape[0], chunk):
                sl = slice(start, start + chunk)
                h = hidden[sl]
                if ctx.kept is not None:  # softmax = exp(logits - max) / sum, scaled in place
                    prob, total = ctx.kept
                    ctx.kept = None
                    norm = total
                else:  # recompute the chunk's logits; softmax = exp(logits - lse), in place
                    prob = (h @ weight.t()).float().sub_(lse_all[sl].unsqueeze(1)).exp_()
                    norm = None
                lse = lse_all[sl]
                valid = (labels[sl] != IGNORE_INDEX).float()
                scale = (grad_ce + grad_z * zm * 2 * lse) * valid  # (chunk,)
                dlogits = prob.mul_((scale / norm if norm is not None else scale).unsqueeze(1))
                rows = torch.arange(dlogits.shape[0], device=dlogits.device)
                dlogits[rows, labels[sl].clamp(min=0)] -= grad_ce * valid
                dlogits = dlogits if ctx.autocast else dlogits.to(weight.dtype)
                grad_hidden[sl] = (dlogits @ weight).to(hidden.dtype)
                grad_weight += (dlogits.t() @ h).float()
        return grad_hidden, grad_weight.to(weight.dtype), None, None, None


def fused_lm_loss_sums(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    z_loss_multiplier: float = 0.0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed CE and z-loss of ``hidden @ weight.T`` against ``labels``, without the full logits.

    Args:
        hidden: (..., d_model) final-norm outputs.
        weight: (V, d_model) output projection.
        labels: (...) next-token targets; -100 is ignored.
        z_loss_multiplier: weight of ``logsumexp^2`` (OLMo 2: 1e-5); 0 gives a zero z-loss.
        chunk_elements: logit elements computed at once (memory of one chunk, fp32).

    Returns:
        ``(ce_sum, z_sum)``, fp32 scalars, like :func:`olmo2_lit.train.loss.lm_loss_sums` on the logits.
    """
    chunk = max(1, chunk_elements // weight.shape[0])
    return _FusedLMLoss.apply(
        hidden.reshape(-1, hidden.shape[-1]),
        weight,
        labels.reshape(-1),
        float(z_loss_multiplier or 0.0),
        chunk,
    )
