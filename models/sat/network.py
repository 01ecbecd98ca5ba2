"""SAT's segmentation network (official `Maskformer`, SAT:model/maskformer.py), with the official state-dict keys.

A plain-conv U-Net (`backbone`) gives multi-scale encoder features and full-resolution per-pixel features. The
encoder features are average-pooled to the 1/32 grid, concatenated and projected to 768-d image tokens
(`projection_layer`); a fixed 3D sinusoidal encoding is added to the keys. Each text query attends to the tokens
through a 6-layer cross-attention-only decoder (`transformer_decoder`, pre-norm); the result is projected
(`mask_embed_proj`) and dotted with every pixel's features to give one logit map per query.
Official: zhaoziheng/SAT@5676be5 model/maskformer.py:14-344.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from positional_encodings.torch_encodings import PositionalEncoding3D
from torch import nn

WINDOW = (288, 288, 96)
PATCH = 32  # the bottleneck's downsampling factor: image tokens live on the 1/32 grid
QUERY_DIM = 768


@dataclass(frozen=True)
class SATConfig:
    """One SAT size: U-Net widths and convolutions per stage, projection and mask-embedding widths."""

    name: str
    features: tuple[int, ...]
    convs_per_stage: int
    projection_hidden: int
    mask_hidden: int
    pixel_dim: int
    deep_supervision_hidden: tuple[int, ...]
    deep_supervision_dims: tuple[int, ...]


NANO = SATConfig("nano", (64, 64, 128, 256, 512, 768), 2, 768, 256, 64, (256, 384, 512), (64, 128, 256))
PRO = SATConfig("pro", (128, 128, 256, 512, 1024, 1536), 3, 1536, 384, 128, (384, 512, 512), (128, 256, 512))
CONFIGS = {"nano": NANO, "pro": PRO}


def _conv_blocks(num_convs: int, in_channels: int, out_channels: int, stride: int) -> StackedConvBlocks:
    """nnU-Net conv -> InstanceNorm -> LeakyReLU blocks as SAT configures them (keys `convs.i.conv`/`all_modules`)."""
    return StackedConvBlocks(num_convs, nn.Conv3d, in_channels, out_channels, 3, stride, True, nn.InstanceNorm3d,
                             {"eps": 1e-5, "affine": True}, None, None, nn.LeakyReLU, None, False)


class FeatureDecoder(nn.Module):
    """SAT's U-Net decoder: transposed conv up, concatenate the skip, convs; no segmentation layers."""

    def __init__(self, features: tuple[int, ...], convs_per_stage: int):
        super().__init__()
        below_skip = list(zip(features[:0:-1], features[-2::-1]))  # (channels below, skip channels), coarse first
        self.stages = nn.ModuleList(_conv_blocks(convs_per_stage, 2 * skip, skip, 1) for _, skip in below_skip)
        self.transpconvs = nn.ModuleList(nn.ConvTranspose3d(below, skip, 2, 2, bias=True) for below, skip in below_skip)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """Full-resolution per-pixel features from the encoder outputs (finest first, bottleneck last). The list
        is consumed (emptied), so each skip is freed as soon as it is used: at 288 x 288 x 96 one full-resolution
        tensor is 2 GiB (Nano) on a CPU."""
        x = skips.pop()
        for up, stage in zip(self.transpconvs, self.stages):
            x = stage(torch.cat((up(x), skips.pop()), dim=1))
        return x


class UNetBackbone(nn.Module):
    """3-channel input, 6 stages with strides (1, 2, 2, 2, 2, 2): `encoder` gives the skips, `decoder` the
    full-resolution pixel features."""

    def __init__(self, config: SATConfig):
        super().__init__()
        n = len(config.features)
        self.encoder = PlainConvEncoder(3, n, config.features, nn.Conv3d, 3, (1,) + (2,) * (n - 1),
                                        config.convs_per_stage, True, nn.InstanceNorm3d, {"eps": 1e-5, "affine": True},
                                        None, None, nn.LeakyReLU, None, return_skips=True, nonlin_first=False)
        self.decoder = FeatureDecoder(config.features, config.convs_per_stage)


class CrossAttentionLayer(nn.Module):
    """SAT's query-decoder layer (DETR's, self-attention removed), pre-norm: norm2 -> attention, norm3 -> FFN.
    `norm1` exists in the checkpoint but is never used."""

    def __init__(self, dim: int = QUERY_DIM, heads: int = 8, hidden: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.linear1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """queries [N, B, dim], memory [T, B, dim], pos [T, 1 or B, dim] (sequence first)."""
        attended = self.multihead_attn(self.norm2(queries), memory + pos, memory, need_weights=False)[0]
        queries = queries + self.dropout2(attended)
        hidden = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(queries)))))
        return queries + self.dropout3(hidden)


class QueryDecoder(nn.Module):
    """6 cross-attention layers and a final LayerNorm (keys `layers.i.*`, `norm.*`)."""

    def __init__(self, num_layers: int = 6, dim: int = QUERY_DIM):
        super().__init__()
        self.layers = nn.ModuleList(CrossAttentionLayer(dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            queries = layer(queries, memory, pos)
        return self.norm(queries)


def _mlp(dims: tuple[int, ...]) -> nn.Sequential:
    """Linear-GELU-Linear-GELU (keys `.0`, `.2`)."""
    return nn.Sequential(nn.Linear(dims[0], dims[1]), nn.GELU(), nn.Linear(dims[1], dims[2]), nn.GELU())


def positional_encoding(grid: tuple[int, int, int], channels: int = QUERY_DIM) -> torch.Tensor:
    """SAT's fixed token position encoding, [h*w*d, 1, channels] (h slowest), always computed on the CPU."""
    with torch.device("cpu"):
        encoding = PositionalEncoding3D(channels)(torch.zeros(1, *grid, channels))
    return encoding.flatten(1, 3).permute(1, 0, 2).contiguous()


@dataclass
class ImageFeatures:
    """One backbone pass: image tokens [T, B, 768], their position encoding [T, 1, 768], pixel features
    [B, C, H, W, D]."""

    tokens: torch.Tensor
    pos: torch.Tensor
    pixels: torch.Tensor


class SATNetwork(nn.Module):
    """SAT-Nano or SAT-Pro (`config` NANO or PRO) for windows of `image_size` (multiples of 32).

    `deep_supervision=True` builds the training-only heads `mid_mask_embed_proj` (so the module's state dict is the
    training checkpoint's); inference never uses them. `pos_embedding` is a plain attribute, not in the state dict.
    """

    def __init__(self, config: SATConfig = NANO, image_size: tuple[int, int, int] = WINDOW,
                 deep_supervision: bool = False):
        super().__init__()
        if any(n % PATCH for n in image_size):
            raise ValueError(f"SAT window {tuple(image_size)} must be a multiple of {PATCH} on every axis")
        self.config = config
        self.image_size = tuple(image_size)
        self.backbone = UNetBackbone(config)
        self.projection_layer = _mlp((sum(config.features), config.projection_hidden, QUERY_DIM))
        self.pos_embedding = positional_encoding(tuple(n // PATCH for n in image_size))
        self.transformer_decoder = QueryDecoder()
        if deep_supervision:
            self.mid_mask_embed_proj = nn.ModuleList(
                _mlp((QUERY_DIM, hidden, dim))
                for hidden, dim in zip(config.deep_supervision_hidden, config.deep_supervision_dims))
        self.mask_embed_proj = _mlp((QUERY_DIM, config.mask_hidden, config.pixel_dim))

    def encode(self, image: torch.Tensor) -> ImageFeatures:
        """Backbone pass over windows [B, 3, *image_size]: image tokens and per-pixel features."""
        if tuple(image.shape[2:]) != self.image_size:
            raise ValueError(f"SAT network built for windows {self.image_size}, got input {tuple(image.shape)}")
        skips = self.backbone.encoder(image)
        last = len(skips) - 1
        pooled = [F.avg_pool3d(skip, 2 ** (last - i)) for i, skip in enumerate(skips[:-1])] + [skips[-1]]
        tokens = self.projection_layer(torch.cat(pooled, dim=1).permute(0, 2, 3, 4, 1))  # B h w d 768
        tokens = tokens.flatten(1, 3).transpose(0, 1)  # (h w d) B 768
        pixels = self.backbone.decoder(skips)
        return ImageFeatures(tokens, self.pos_embedding.to(tokens.device), pixels)

    def decode(self, queries: torch.Tensor, features: ImageFeatures) -> torch.Tensor:
        """Text queries [N, 768] through the query decoder for every window: [N, B, 768]."""
        batch = features.tokens.shape[1]
        queries = queries.unsqueeze(1).expand(-1, batch, -1)
        return self.transformer_decoder(queries, features.tokens, features.pos)

    def mask_embeddings(self, queries: torch.Tensor, features: ImageFeatures) -> torch.Tensor:
        """Per-query mask embeddings [B, N, C], dotted with the pixel features to give logits."""
        return self.mask_embed_proj(self.decode(queries, features)).transpose(0, 1)

    @staticmethod
    def logits(mask_embeddings: torch.Tensor, features: ImageFeatures) -> torch.Tensor:
        """[B, N, H, W, D] logits: each pixel's features dotted with each query's mask embedding."""
        return torch.einsum("bchwd,bnc->bnhwd", features.pixels, mask_embeddings)

    def forward(self, queries: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Logits [B, N, H, W, D] of N text queries [N, 768] on windows [B, 3, H, W, D] (official infer_forward)."""
        features = self.encode(image)
        return self.logits(self.mask_embeddings(queries, features), features)
