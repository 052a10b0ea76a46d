"""Weights in and out: Hugging Face OLMo 2 checkpoints, native weight directories, Lightning ``.ckpt``."""
