"""SAM-Med3D's 3D ViT image encoder (`vit_b_ori`: 128^3 input, patch 16, 8^3 tokens, 384-channel neck).

Written after uni-medical/SAM-Med3D@f3de1fa
segment_anything/modeling/image_encoder3D.py:48-414; submodule names match the official state dict.
Two trained-in details are kept on purpose:
- window blocks pad the 8^3 token grid with zeros to one 14^3 window and attend over it without a mask,
  so padded tokens contribute keys and values (their qkv bias);
- the decomposed relative-position terms are broadcast onto the key axes exactly as the official
  `add_decomposed_rel_pos` does (see `official_rel_pos_bias`), not as their names say.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm3d(nn.Module):
    """Channel-wise LayerNorm of a (B, C, X, Y, Z) tensor (mean and variance over C), eps 1e-6."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(1, keepdim=True)
        x = centred / torch.sqrt(centred.pow(2).mean(1, keepdim=True) + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.gelu(self.lin1(x)))


def relative_embeddings(size: int, table: torch.Tensor) -> torch.Tensor:
    """(size, size, C): table[q - k + size - 1] for query position q and key position k along one axis."""
    if table.shape[0] != 2 * size - 1:
        raise ValueError(f"relative-position table of {table.shape[0]} rows does not fit a grid of {size}")
    positions = torch.arange(size, device=table.device)
    return table[positions[:, None] - positions[None, :] + size - 1]


def official_rel_pos_bias(q: torch.Tensor, tables: tuple[torch.Tensor, ...], size: int) -> torch.Tensor:
    """The additive attention bias of the official `add_decomposed_rel_pos`, on a cubic grid of `size`.

    q: (N, size^3, C) queries (not multiplied by the attention scale, as in the official code). Returns (N, size^3, size^3) over (qd, qh, qw) x (kd, kh, kw).
    With per-axis terms t_a[n, qd, qh, qw, j] = q . R_a[q_a, j], the official broadcast places
    t_d on (kw = j), t_h on (kd = qw, kw = j) and t_w on (kh = qw, kw = j), every other axis broadcast.
    This is what the SAM-Med3D weights were trained with; it is only well-defined because the grid is cubic.
    """
    n, _, channels = q.shape
    grid = q.reshape(n, size, size, size, channels)
    rel_d, rel_h, rel_w = (relative_embeddings(size, table) for table in tables)
    term_d = torch.einsum("ndhwc,dkc->ndhwk", grid, rel_d)
    term_h = torch.einsum("ndhwc,hkc->ndhwk", grid, rel_h)
    term_w = torch.einsum("ndhwc,wkc->ndhwk", grid, rel_w)
    bias = (term_d[:, :, :, :, None, None, :]                   # (n, qd, qh, qw, 1, 1, kw)
            + term_h[:, :, :, None, :, None, :]                 # (n, qd, qh, 1, kd<-qw, 1, kw)
            + term_w[:, :, :, None, None, :, :])                # (n, qd, qh, 1, 1, kh<-qw, kw)
    return bias.reshape(n, size ** 3, size ** 3)


class Attention(nn.Module):
    """Multi-head self-attention over a cubic token grid with the official decomposed relative positions."""

    def __init__(self, dim: int, num_heads: int, grid: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_d = nn.Parameter(torch.zeros(2 * grid - 1, head_dim))
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, d, h, w, dim = x.shape
        if not d == h == w:
            raise ValueError(f"SAM-Med3D attention needs a cubic token grid, got {(d, h, w)}")
        tokens = d * h * w
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * self.num_heads, tokens, -1).unbind(0)
        bias = official_rel_pos_bias(q, (self.rel_pos_d, self.rel_pos_h, self.rel_pos_w), d)  # unscaled q
        # softmax(scale * q k^T + bias) v, fused (about 40% less CPU time than the explicit product)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.view(batch, self.num_heads, d, h, w, -1).permute(0, 2, 3, 4, 1, 5)
        return self.proj(out.reshape(batch, d, h, w, dim))


class Block(nn.Module):
    """Pre-norm transformer block; window blocks attend inside zero-padded cubic windows of `window` tokens."""

    def __init__(self, dim: int, num_heads: int, window: int, grid: int):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, window if window else grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        y = self.attn(y) if not self.window else self._windowed_attention(y)
        x = x + y
        return x + self.mlp(self.norm2(x))

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, d, h, w, dim = x.shape
        s = self.window
        pads = [(s - n % s) % s for n in (d, h, w)]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))  # zero tokens, attended without a mask
        nd, nh, nw = ((n + p) // s for n, p in zip((d, h, w), pads))
        windows = (x.view(batch, nd, s, nh, s, nw, s, dim).permute(0, 1, 3, 5, 2, 4, 6, 7)
                   .reshape(-1, s, s, s, dim))
        out = self.attn(windows)
        out = (out.view(batch, nd, nh, nw, s, s, s, dim).permute(0, 1, 4, 2, 5, 3, 6, 7)
               .reshape(batch, nd * s, nh * s, nw * s, dim))
        return out[:, :d, :h, :w].contiguous()


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv3d(1, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 4, 1)  # (B, X, Y, Z, C)


class ImageEncoderViT3D(nn.Module):
    """(B, 1, 128, 128, 128) normalised image -> (B, 384, 8, 8, 8) embedding."""

    def __init__(self, img_size: int = 128, patch_size: int = 16, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, out_chans: int = 384, window_size: int = 14,
                 global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)):
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, 0 if i in global_attn_indexes else window_size, grid) for i in range(depth))
        self.neck = nn.Sequential(
            nn.Conv3d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm3d(out_chans),
            nn.Conv3d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm3d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 4, 1, 2, 3))
