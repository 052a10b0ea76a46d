"""olmo2_lit: the OLMo 2 transformer, its data and its training recipe on PyTorch Lightning."""

__version__ = "0.1.0"
