"""A user init scheme that poisons the output layer, to check the NaN-loss stop."""

import torch

from olmo2_lit.model.init import InitScheme, OLMo2Init


class NaNInit(InitScheme):
    def __call__(self, model):
        OLMo2Init()(model)
        with torch.no_grad():
            model.lm_head.weight[0, 0] = float("nan")
