"""A user's own block, defined outside the library, selected from YAML by dotted path."""

from olmo2_lit.model import Block


class ParallelBlock(Block):
    """GPT-J style: attention and MLP read the same normalized input, summed into the residual."""

    def forward(self, x, rope, doc_lens):
        h = self.attention_norm(x)
        return x + self.attention(h, rope, doc_lens) + self.feed_forward(h)
