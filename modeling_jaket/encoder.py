"""LM1's and LM2's building blocks: RoBERTa/BERT embeddings and transformer layers.

Written here rather than imported from `transformers.models.bert`, whose internals change between releases, so that
the code saved beside a model's weights loads under any transformers release in the declared range. Submodule and
parameter names are BERT's (`attention.self.query`, `output.LayerNorm`, ...), so RoBERTa/BERT checkpoints load as
they are and the numerics are the same as transformers' own models.
"""

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GradientCheckpointingLayer

from .activations import get_activation


class JaketEmbeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout. With `backbone_type="roberta"`, positions count
    from `pad_token_id + 1` over the non-padding tokens (fairseq's convention), and the position table has a padding
    row."""

    def __init__(self, config):
        super().__init__()
        self.padding_idx = config.pad_token_id if config.backbone_type == "roberta" else None
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=self.padding_idx
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        positions = torch.arange(config.max_position_embeddings).expand((1, -1))
        self.register_buffer("position_ids", positions, persistent=False)
        self.register_buffer("token_type_ids", torch.zeros(positions.size(), dtype=torch.long), persistent=False)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        """From `input_ids`, or from word vectors `inputs_embeds` ([batch, length, hidden]) given instead; RoBERTa's
        positions then count over every token, as no padding can be seen."""
        batch_size, length = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        if position_ids is None:
            first = 0 if self.padding_idx is None else self.padding_idx + 1
            if first + length > self.position_embeddings.num_embeddings:
                raise ValueError(
                    f"the text has {length} tokens a row; this model takes at most "
                    f"{self.position_embeddings.num_embeddings - first} (max_position_embeddings "
                    f"{self.position_embeddings.num_embeddings}, positions counted from {first}): truncate the text"
                )
            if self.padding_idx is None:
                position_ids = self.position_ids[:, :length]
            elif input_ids is None:
                position_ids = self.position_ids[:, first : first + length]
            else:
                not_padding = input_ids.ne(self.padding_idx).int()
                position_ids = (torch.cumsum(not_padding, dim=1).type_as(not_padding) * not_padding).long()
                position_ids = position_ids + self.padding_idx
        if token_type_ids is None:
            token_type_ids = self.token_type_ids[:, :length].expand(batch_size, length)
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = (
            inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        )
        return self.dropout(self.LayerNorm(embeddings))


def expand_attention_mask(attention_mask):
    """[batch, length] 1/0 padding mask -> boolean [batch, 1, 1, length] (True attends), or None when every token
    attends, which lets scaled-dot-product attention take its unmasked kernel."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


class JaketSelfAttention(nn.Module):
    """Multi-head self-attention through `torch.nn.functional.scaled_dot_product_attention`; computed explicitly
    (eager) when the weights are asked for or `config._attn_implementation` is `"eager"`."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_size**-0.5
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        shape = (*hidden_states.shape[:-1], -1, self.head_size)
        query, key, value = (
            projection(hidden_states).view(shape).transpose(1, 2) for projection in (self.query, self.key, self.value)
        )
        weights = None
        if output_attentions or getattr(self.config, "_attn_implementation", None) == "eager":
            scores = torch.matmul(query, key.transpose(-1, -2)) * self.scaling
            if attention_mask is not None:
                scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
            weights = scores.softmax(dim=-1)
            context = torch.matmul(self.dropout(weights), value)
        else:
            dropout = self.dropout.p if self.training else 0.0
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=self.scaling
            )
        context = context.transpose(1, 2).reshape(*hidden_states.shape[:-1], -1)
        return context, (weights if output_attentions else None)


class JaketResidualOutput(nn.Module):
    """dense, dropout, then LayerNorm over the sum with the sub-layer's input (BERT's SelfOutput and Output)."""

    def __init__(self, config, in_features):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class JaketAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = JaketSelfAttention(config)
        self.output = JaketResidualOutput(config, config.hidden_size)

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        context, weights = self.self(hidden_states, attention_mask, output_attentions)
        return self.output(context, hidden_states), weights


class JaketIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class JaketLayer(GradientCheckpointingLayer):
    """One post-LayerNorm transformer layer: self-attention, then the feed-forward block. Recomputed in the backward
    pass instead of stored once `gradient_checkpointing_enable()` is called (a `GradientCheckpointingLayer`)."""

    def __init__(self, config):
        super().__init__()
        self.attention = JaketAttention(config)
        self.intermediate = JaketIntermediate(config)
        self.output = JaketResidualOutput(config, config.intermediate_size)

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        attention_output, weights = self.attention(hidden_states, attention_mask, output_attentions)
        return self.output(self.intermediate(attention_output), attention_output), weights
