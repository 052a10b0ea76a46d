"""A user's own block, defined outside the library, selected from YAML by dotted path.

The same block as the example in docs/model.md ("Your own component").
"""

from olmo2_lit.model import Block


class ParallelBlock(Block):
    """GPT-NeoX style: attention and MLP both read the block input, each through its own norm,
    and both add to the residual stream."""

    def forward(self, x, rope, doc_lens):
        attention = self.attention(self.attention_norm(x), rope, doc_lens)
        return x + attention + self.feed_forward(self.feed_forward_norm(x))
