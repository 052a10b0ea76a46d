"""The reader side of the data: opening OLMo-format token shards, the global order, the data position and
the datamodule (the format itself is ``olmo2_lit.shard_format``)."""
