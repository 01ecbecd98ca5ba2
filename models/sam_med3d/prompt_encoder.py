"""SAM-Med3D's 3D prompt encoder: points (no boxes) and the previous low-res mask.

From uni-medical/SAM-Med3D@f3de1fa segment_anything/modeling/prompt_encoder3D.py:30-232. The trained
conventions are kept: the random Fourier features are `cat([sin, cos, sin])` (the third block repeats sin), a
point's coordinate k is divided by the input size along axis k, but the dense grid encoding feeds the grid's
second axis as the first coordinate (`[axis 1, axis 0, axis 2]`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.sam_med3d.image_encoder import LayerNorm3d


class PositionEmbeddingRandom3D(nn.Module):
    def __init__(self, num_pos_feats: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((3, num_pos_feats)))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates in [0, 1]^3 (..., 3) -> (..., 3 * num_pos_feats)."""
        projected = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(projected), torch.cos(projected), torch.sin(projected)], dim=-1)

    def forward(self, size: tuple[int, int, int]) -> torch.Tensor:
        """The dense encoding of a grid of `size`: (C, X, Y, Z)."""
        x, y, z = size
        grid = torch.ones(size, device=self.positional_encoding_gaussian_matrix.device, dtype=torch.float32)
        along_0 = (grid.cumsum(dim=0) - 0.5) / y  # official names: y_embed (divided by the size of axis 1)
        along_1 = (grid.cumsum(dim=1) - 0.5) / x  # x_embed (divided by the size of axis 0)
        along_2 = (grid.cumsum(dim=2) - 0.5) / z
        return self._encode(torch.stack([along_1, along_0, along_2], dim=-1)).permute(3, 0, 1, 2)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int, int]) -> torch.Tensor:
        """Point coordinates in voxels (B, N, 3) -> (B, N, C); coordinate k is divided by image_size[k]."""
        scale = torch.tensor(image_size, dtype=torch.float32, device=coords.device)
        return self._encode(coords.to(torch.float32) / scale)


class PromptEncoder3D(nn.Module):
    def __init__(self, embed_dim: int = 384, image_embedding_size: tuple[int, int, int] = (8, 8, 8),
                 input_image_size: tuple[int, int, int] = (128, 128, 128), mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom3D(embed_dim // 3)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(2))  # negative, positive
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv3d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm3d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv3d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm3d(mask_in_chans),
            nn.GELU(),
            nn.Conv3d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """(1, C, 8, 8, 8): the positional encoding of the image-embedding grid."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        points = points + 0.5  # voxel centres
        if pad:  # a padding point at the origin with label -1 when there is no box
            points = torch.cat([points, torch.zeros_like(points[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        embedding = torch.where((labels == -1)[..., None], torch.zeros_like(embedding), embedding)
        embedding = embedding + (labels == -1)[..., None] * self.not_a_point_embed.weight
        embedding = embedding + (labels == 0)[..., None] * self.point_embeddings[0].weight
        return embedding + (labels == 1)[..., None] * self.point_embeddings[1].weight

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: None,
                masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse (B, N+1, C) point embeddings and dense (B, C, 8, 8, 8) mask embeddings.

        points: (coords (B, N, 3) in 128^3 voxel indices, labels (B, N): 1 positive, 0 negative).
        masks: previous low-res logits (B, 1, 32, 32, 32), or None for the learned no-mask embedding.
        """
        if boxes is not None:
            raise ValueError("SAM-Med3D takes no box prompts (the official encoder has no box embeddings)")
        batch = points[0].shape[0] if points is not None else masks.shape[0] if masks is not None else 1
        sparse = torch.empty((batch, 0, self.embed_dim), device=self.point_embeddings[0].weight.device)
        if points is not None:
            sparse = torch.cat([sparse, self._embed_points(points[0], points[1], pad=True)], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        return sparse, dense
