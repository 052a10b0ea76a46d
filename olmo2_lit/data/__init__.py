"""Token shards in OLMo's on-disk format and the datamodule that reads them."""
