"""The LFM2 hybrid backbone in one readable file.

A stack of pre-norm blocks. Each block mixes tokens with either a gated short convolution or
grouped-query attention (QK RMSNorm, RoPE), then applies a SwiGLU feed-forward. Parameter names
match `transformers.Lfm2Model`, so Hugging Face checkpoints load unchanged.

Padding. A text's vectors never depend on what else is in its batch:
- attention masks padded keys in every batch shape;
- the convolution zeroes its input at padded positions in every batch shape. transformers
  skips that zeroing when the batch holds a single row (`apply_mask_to_padding_states`), which
  makes the vectors of padded positions (ColBERT query-expansion tokens) change with the batch
  size. We always zero, which is what transformers does for every batch of two or more rows.
- with right padding and a causal model, real tokens never see padding at all; in
  bidirectional mode the centred convolution would see the first padded position, so the
  gated product is zeroed there as well.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .config import ATTENTION, LFM2Config


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 for bf16 stability, exactly as the reference does.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape [B, T, head_dim], computed in fp32 then cast."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, dtype=torch.int64, device=position_ids.device).float() / head_dim
    )
    freqs = position_ids.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, T, D]; cos/sin: [B, T, D]
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


class Attention(nn.Module):
    """Grouped-query attention with per-head RMSNorm on queries and keys before RoPE."""

    def __init__(self, config: LFM2Config) -> None:
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.n_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        d = config.hidden_size
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)
        self.q_layernorm = RMSNorm(self.head_dim, config.norm_eps)
        self.k_layernorm = RMSNorm(self.head_dim, config.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_layernorm(self.q_proj(x).view(b, t, self.n_heads, self.head_dim)).transpose(1, 2)
        k = self.k_layernorm(self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=self.n_kv_heads != self.n_heads
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, t, -1))


class ShortConv(nn.Module):
    """Gated short convolution: in_proj to (B, C, x); B*x; depthwise conv over time; C*; out_proj."""

    def __init__(self, config: LFM2Config) -> None:
        super().__init__()
        d, k = config.hidden_size, config.conv_L_cache
        self.kernel = k
        self.bidirectional = config.bidirectional
        self.conv = nn.Conv1d(d, d, kernel_size=k, groups=d, bias=config.conv_bias, padding=k - 1)
        self.in_proj = nn.Linear(d, 3 * d, bias=config.conv_bias)
        self.out_proj = nn.Linear(d, d, bias=config.conv_bias)

    def forward(self, x: torch.Tensor, state_mask: torch.Tensor | None) -> torch.Tensor:
        if state_mask is not None:
            x = x * state_mask[:, :, None].to(x.dtype)
        b_gate, c_gate, h = self.in_proj(x).transpose(1, 2).chunk(3, dim=1)
        bx = b_gate * h  # [B, D, T]
        if self.bidirectional:
            if state_mask is not None:
                bx = bx * state_mask[:, None, :].to(bx.dtype)
            left = (self.kernel - 1) // 2
            bx = F.pad(bx, (left, self.kernel - 1 - left))
        else:
            bx = F.pad(bx, (self.kernel - 1, 0))
        conv_out = F.conv1d(bx, self.conv.weight, self.conv.bias, groups=bx.shape[1])
        return self.out_proj((c_gate * conv_out).transpose(1, 2))


class MLP(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x)."""

    def __init__(self, config: LFM2Config) -> None:
        super().__init__()
        d, f = config.hidden_size, config.ffn_dim
        self.w1 = nn.Linear(d, f, bias=False)
        self.w3 = nn.Linear(d, f, bias=False)
        self.w2 = nn.Linear(f, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.w2(F.silu(self.w1(x)) * self.w3(x))
        # Inference: in place, which halves the memory traffic of this memory-bound step.
        return self.w2(F.silu(self.w1(x), inplace=True).mul_(self.w3(x)))


class Block(nn.Module):
    def __init__(self, config: LFM2Config, layer_type: str) -> None:
        super().__init__()
        self.is_attention = layer_type == ATTENTION
        if self.is_attention:
            self.self_attn = Attention(config)
        else:
            self.conv = ShortConv(config)
        self.operator_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.ffn_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.feed_forward = MLP(config)

    def forward(self, x, rope, attn_mask, is_causal, state_mask):
        h = self.operator_norm(x)
        if self.is_attention:
            h = self.self_attn(h, rope, attn_mask, is_causal)
        else:
            h = self.conv(h, state_mask)
        x = x + h
        return x + self.feed_forward(self.ffn_norm(x))


def build_attention_mask(
    attention_mask: torch.Tensor | None, seq_len: int, causal: bool
) -> tuple[torch.Tensor | None, bool]:
    """Boolean SDPA mask [B, 1, T, T] (True = may attend) and the `is_causal` flag.

    Without padding the fast fused paths are used (`is_causal=True` or no mask at all).
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None, causal
    keys = attention_mask.bool()[:, None, None, :]
    allowed = keys.expand(-1, 1, seq_len, -1)
    if causal:
        tril = torch.ones(seq_len, seq_len, dtype=torch.bool, device=keys.device).tril()
        allowed = allowed & tril
    # A row with nothing to attend to (left padding) would give NaN; let it see itself.
    # Such rows are padding, so their output is never used.
    empty = ~allowed.any(-1, keepdim=True)
    if bool(empty.any()):
        eye = torch.eye(seq_len, dtype=torch.bool, device=keys.device)
        allowed = allowed | (empty & eye)
    return allowed, False


class LFM2Model(nn.Module):
    """Token ids in, final hidden states out (`[B, T, hidden_size]`)."""

    def __init__(self, config: LFM2Config, *, initialize: bool = True) -> None:
        """`initialize=False` leaves the token embeddings unset, for a caller that loads every
        weight next (load_backbone): torch's default init of that table alone is 36 ms of every
        start-up, a third of the whole model's load."""
        super().__init__()
        self.config = config
        table = None if initialize else torch.empty(config.vocab_size, config.hidden_size)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, _weight=table)
        self.layers = nn.ModuleList(Block(config, kind) for kind in config.layer_types)
        # Named `embedding_norm` in transformers although it is the final norm.
        self.embedding_norm = RMSNorm(config.hidden_size, config.norm_eps)
        # Math in another dtype than the stored weights: bf16 weights with fp32 math is the
        # fast way to halve memory on CPUs without native bf16 (AVX2), where bf16 GEMMs run
        # about 7x slower than fp32 ones. None computes in the weights' dtype.
        self.compute_dtype: torch.dtype | None = None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        state_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        attention_mask: [B, T], 1 where a position may be attended to (a real token).
        position_ids:   [B, T], defaults to 0..T-1 for every row (right padding).
        state_mask:     [B, T], 1 where the convolution's input is real; defaults to
                        attention_mask. Differs only for ColBERT queries whose expansion
                        tokens are kept as inputs but not attended to.
        """
        b, t = input_ids.shape
        x = self.embed_tokens(input_ids)
        cast = self.compute_dtype is not None and self.compute_dtype != x.dtype
        if cast:
            x = x.to(self.compute_dtype)
        if position_ids is None:
            position_ids = torch.arange(t, device=input_ids.device).expand(b, t)
        if state_mask is None:
            state_mask = attention_mask
        if state_mask is not None and bool(state_mask.all()):
            state_mask = None
        rope = rope_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta, x.dtype)
        attn_mask, is_causal = build_attention_mask(attention_mask, t, not self.config.bidirectional)
        for layer in self.layers:
            args = (x, rope, attn_mask, is_causal, state_mask)
            # Casting one layer at a time keeps the transient fp32 copy to one layer's size.
            x = _call_in_dtype(layer, x.dtype, args) if cast else layer(*args)
        return _call_in_dtype(self.embedding_norm, x.dtype, (x,)) if cast else self.embedding_norm(x)

    def init_weights(self, seed: int | None = None) -> None:
        """Random initialisation for training from scratch (normal(0, initializer_range))."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv1d)):
                with torch.no_grad():
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        # Scale residual output projections by depth, as GPT-2 does, for stable training.
        scale = 1.0 / math.sqrt(2 * len(self.layers))
        with torch.no_grad():
            for layer in self.layers:
                layer.feed_forward.w2.weight.mul_(scale)
                (layer.self_attn if layer.is_attention else layer.conv).out_proj.weight.mul_(scale)


def _call_in_dtype(module: nn.Module, dtype: torch.dtype, args: tuple):
    params = {name: p.to(dtype) for name, p in module.named_parameters()}
    return functional_call(module, params, args)


class LFM2ForCausalLM(nn.Module):
    """Backbone plus a language-modelling head (tied to the embeddings unless configured not to)."""

    def __init__(self, config: LFM2Config) -> None:
        super().__init__()
        self.config = config
        self.model = LFM2Model(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.model(input_ids, attention_mask)
        weight = self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
        return hidden @ weight.T
