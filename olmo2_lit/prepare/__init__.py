"""The offline writer side of the data: text/JSONL -> OLMo-format token shards (``olmo2-lit prepare``).

The reader side (``olmo2_lit.data``) never imports this package, except where
``TokenShardDataModule.prepare_data()`` calls :func:`olmo2_lit.prepare.prepare.prepare`.
"""
