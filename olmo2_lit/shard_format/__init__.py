"""The on-disk format of token shards, shared by the reader (``olmo2_lit.data``) and the writer
(``olmo2_lit.prepare``): file layout and dtype (:mod:`.layout`), the sidecar (:mod:`.sidecar`), the
tokenizer a sidecar names (:mod:`.tokenizer`) and finding it again (:mod:`.identity`).

It imports nothing of ours above it (no data, prepare, train, weights, lightning): both sides read the
format here, so neither reaches into the other for it (docs/data.md, "Shard format").
"""
