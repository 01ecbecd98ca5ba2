"""SegVol's network (BAAI-DCAI/SegVol, `SegVol` in network/model.py with `test_mode=True`), key for key.

Image encoder: MONAI `ViT` (32 x 256 x 256 input, 4 x 16 x 16 patches, 8 x 16 x 16 = 2048 tokens of width 768).
Prompt encoder and mask decoder: SAM's, made volumetric; the text embedding is an extra sparse token and a
similarity term added to the mask logits. Text encoder: CLIP's text tower with its default configuration.

Coordinate conventions are kept exactly as trained, although they look like bugs: points and boxes are
(D, H, W) voxel indices of the 32 x 256 x 256 input whose D index is divided by 256 and H index by 32 before the
Fourier encoding, while the dense positional encoding stacks the H axis first (BAAI-DCAI/SegVol@5768c97
segment_anything_volumetric/modeling/prompt_encoder.py:187-209).

Construction does no data-dependent work, so `with torch.device("meta"): SegVolNetwork()` gives sizes for free.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.networks.nets import ViT
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.mask_decoder import MLP
from segment_anything.modeling.transformer import TwoWayTransformer
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

ROI = (32, 256, 256)  # the network's input size (D, H, W); the decoder's LayerNorm is tied to it
PATCH = (4, 16, 16)
GRID = tuple(r // p for r, p in zip(ROI, PATCH))  # (8, 16, 16) image tokens
WIDTH = 768


def image_encoder() -> ViT:
    """MONAI's ViT as SegVol builds it. MONAI >= 1.5 gives every block a `norm_cross_attn` LayerNorm that is
    used only with cross-attention; SegVol's checkpoint has none, so exactly those unused norms are removed.
    Attention runs through torch's fused scaled_dot_product_attention (MONAI's `use_flash_attention`, which its
    ViT does not pass on): the same softmax(q k^T * scale) v, about twice as fast on CPU, equal to ~1e-6."""
    vit = ViT(in_channels=1, img_size=ROI, patch_size=PATCH, hidden_size=WIDTH, mlp_dim=3072, num_layers=12,
              num_heads=12, proj_type="perceptron", classification=False, dropout_rate=0.0, qkv_bias=False)
    for block in vit.blocks:
        block.attn.use_flash_attention = True
        if hasattr(block, "norm_cross_attn"):
            if block.with_cross_attention:
                raise RuntimeError("SegVol's ViT blocks have no cross-attention")
            block.norm_cross_attn = nn.Identity()  # never called: forward uses it only with cross-attention
    return vit


class FourierPositions(nn.Module):
    """SAM's random-Fourier positional encoding in 3-D (SegVol `PositionEmbeddingRandom`)."""

    def __init__(self, num_pos_feats: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((3, num_pos_feats)))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates normalised to [0, 1] -> sin/cos features (..., 2 * num_pos_feats)."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def dense(self, size: tuple[int, int, int]) -> torch.Tensor:
        """Encoding of every token position of a (h, w, d) grid, stacked (w-index, h-index, d-index) as trained:
        (C, h, w, d)."""
        h, w, d = size
        grid = torch.ones((h, w, d), device=self.positional_encoding_gaussian_matrix.device)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        z = (grid.cumsum(dim=2) - 0.5) / d
        return self.encode(torch.stack([x, y, z], dim=-1)).permute(3, 0, 1, 2)

    def sparse(self, coords: torch.Tensor, image_size: tuple[int, int, int]) -> torch.Tensor:
        """Encoding of (B, N, 3) voxel coordinates; coordinate 0 is divided by image_size[1] and coordinate 1 by
        image_size[0], as trained."""
        scale = coords.new_tensor([image_size[1], image_size[0], image_size[2]], dtype=torch.float32)
        return self.encode(coords.float() / scale)


class PromptEncoder(nn.Module):
    """Points, boxes and the text embedding -> sparse tokens; the no-mask embedding -> dense embedding."""

    def __init__(self, embed_dim: int = WIDTH, image_embedding_size=GRID, input_image_size=ROI,
                 mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = FourierPositions(embed_dim // 2)
        # 0: negative point, 1: positive point, 2 and 3: box corners
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        # SAM's 2-D mask encoder: in the checkpoint, never used (SegVol passes no mask prompt)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2), LayerNorm2d(mask_in_chans // 4), nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2), LayerNorm2d(mask_in_chans),
            nn.GELU(), nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1))
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        return self.pe_layer.dense(self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 3) voxel coordinates with labels 1 (positive), 0 (negative), -1 (ignore); `pad` appends one
        ignored point (SegVol does so exactly when there is no box)."""
        coords = coords.float() + 0.5
        labels = labels.to(coords.dtype)
        if pad:
            coords = torch.cat([coords, coords.new_zeros((coords.shape[0], 1, 3))], dim=1)
            labels = torch.cat([labels, -labels.new_ones((labels.shape[0], 1))], dim=1)
        embedding = self.pe_layer.sparse(coords, self.input_image_size)
        label = labels.unsqueeze(-1)
        embedding = torch.where(label == -1, self.not_a_point_embed.weight, embedding)
        embedding = embedding + torch.where(label == 0, self.point_embeddings[0].weight, 0.0)
        return embedding + torch.where(label == 1, self.point_embeddings[1].weight, 0.0)

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 6) or (B, 1, 6) boxes (d0, h0, w0, d1, h1, w1) -> (B, 2, C) corner tokens."""
        corners = self.pe_layer.sparse(boxes.float().reshape(-1, 2, 3) + 0.5, self.input_image_size)
        return corners + torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])

    def forward(self, points, boxes, text_embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse tokens [points (+ pad)] [box corners] [text] of shape (B, n, C) and the dense (B, C, 8, 16, 16)."""
        parts = []
        if points is not None:
            parts.append(self.embed_points(*points, pad=boxes is None))
        if boxes is not None:
            parts.append(self.embed_boxes(boxes))
        if text_embedding is not None:
            parts.append(text_embedding.unsqueeze(1))
        if parts:
            sparse = torch.cat(parts, dim=1)
        else:  # no prompt at all: one empty token list, as SegVol
            sparse = torch.empty((1, 0, self.embed_dim), device=self.no_mask_embed.weight.device)
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1, 1)
        dense = dense.expand(sparse.shape[0], -1, *self.image_embedding_size)
        return sparse, dense


class VolumeTwoWayTransformer(TwoWayTransformer):
    """SAM's two-way transformer on a (B, C, h, w, d) image embedding: flattening (w, d) first gives the same
    token order as SegVol's 3-D version."""

    def forward(self, image_embedding, image_pe, point_embedding):
        return super().forward(image_embedding.flatten(3), image_pe.flatten(3), point_embedding)


class MaskDecoder(nn.Module):
    """SAM's mask decoder in 3-D with SegVol's text-similarity term. Only mask 0 is ever output (SegVol calls it
    with multimask_output=False), so only its hypernetwork runs; the other heads stay for the checkpoint."""

    def __init__(self, transformer_dim: int = WIDTH, num_multimask_outputs: int = 3, iou_head_depth: int = 3,
                 iou_head_hidden_dim: int = 256, roi=ROI, patch=PATCH):
        super().__init__()
        self.transformer = VolumeTwoWayTransformer(depth=2, embedding_dim=transformer_dim, mlp_dim=2048, num_heads=8)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        upscaled = tuple(2 * r // p for r, p in zip(roi, patch))  # (16, 32, 32) after the first transposed conv
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose3d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            nn.LayerNorm((transformer_dim // 4, *upscaled)), nn.GELU(),
            nn.ConvTranspose3d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)
        self.txt_align_upscaled_embedding = nn.Linear(768, 96)

    def forward(self, image_embeddings, text_embedding, image_pe, sparse, dense) -> torch.Tensor:
        """Low-resolution logits (B, 1, 32, 64, 64) of mask 0."""
        tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse], dim=1)
        src = image_embeddings
        if src.shape[0] != tokens.shape[0]:
            src = torch.repeat_interleave(src, tokens.shape[0], dim=0)
        src = src + dense
        pos_src = torch.repeat_interleave(image_pe, tokens.shape[0], dim=0)
        b, c, h, w, d = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w, d))
        b, c, h, w, d = upscaled.shape
        upscaled = upscaled.reshape(b, c, h * w * d)
        hyper = self.output_hypernetworks_mlps[0](hs[:, 1, :]).unsqueeze(1)
        masks = hyper @ upscaled
        if text_embedding is not None:
            masks = masks + self.txt_align_upscaled_embedding(text_embedding).unsqueeze(1) @ upscaled
        return masks.reshape(b, 1, h, w, d)


class TextEncoder(nn.Module):
    """CLIP's text tower (default configuration) and a 512 -> 768 projection. The pooled embedding is the final
    hidden state at the highest token id (the end-of-text token), as in transformers 4.18 that SegVol was trained
    with (newer versions search for `eos_token_id`, which differs for tokenizers whose end token is not 49407)."""

    def __init__(self):
        super().__init__()
        self.clip_text_model = CLIPTextModel(CLIPTextConfig())
        self.dim_align = nn.Linear(512, 768)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.clip_text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), input_ids.argmax(dim=-1)]
        return self.dim_align(pooled)


class SegVolNetwork(nn.Module):
    """The full network. `forward` = SegVol's test-mode forward; `encode_image` and `decode` split it so an image
    embedding can serve several prompts (the arithmetic per prompt is unchanged)."""

    def __init__(self):
        super().__init__()
        self.image_encoder = image_encoder()
        self.mask_decoder = MaskDecoder()
        self.prompt_encoder = PromptEncoder()
        self.text_encoder = TextEncoder()

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, 32, 256, 256) -> (B, 768, 8, 16, 16)."""
        tokens, _ = self.image_encoder(image)
        return tokens.transpose(1, 2).reshape(image.shape[0], -1, *GRID)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids, attention_mask)

    def decode(self, image_embedding: torch.Tensor, text_embedding: torch.Tensor | None = None,
               boxes: torch.Tensor | None = None, points: tuple[torch.Tensor, torch.Tensor] | None = None,
               low_res: bool = False) -> torch.Tensor:
        """Logits (B, 1, 32, 256, 256) (or the (B, 1, 32, 64, 64) low-resolution ones) for (B, 6) boxes,
        (B, N, 3) points with (B, N) labels and (B, 768) text embeddings, all optional."""
        if boxes is not None and boxes.ndim == 2:
            boxes = boxes[:, None, :]
        sparse, dense = self.prompt_encoder(points, boxes, text_embedding)
        low = self.mask_decoder(image_embedding, text_embedding, self.prompt_encoder.dense_pe(), sparse, dense)
        if low_res:
            return low
        return F.interpolate(low, size=ROI, mode="trilinear", align_corners=False)

    def forward(self, image, text_embedding=None, boxes=None, points=None) -> torch.Tensor:
        return self.decode(self.encode_image(image), text_embedding, boxes, points)
