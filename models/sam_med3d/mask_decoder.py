"""SAM-Med3D's mask decoder: SAM's two-way transformer over the 8^3 embedding, 3D upscaling to 32^3 logits.

From uni-medical/SAM-Med3D@f3de1fa segment_anything/modeling/mask_decoder3D.py:282-423. The
transformer and the MLP heads are segment-anything's own modules (the official TwoWayTransformer3D has the same
math and key names; it only flattens three spatial axes instead of two, which a reshape of the input does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.mask_decoder import MLP
from segment_anything.modeling.transformer import TwoWayTransformer
from torch import nn

from models.sam_med3d.image_encoder import LayerNorm3d


class MaskDecoder3D(nn.Module):
    def __init__(self, transformer_dim: int = 384, num_multimask_outputs: int = 3, iou_head_depth: int = 3,
                 iou_head_hidden_dim: int = 256):
        super().__init__()
        self.transformer = TwoWayTransformer(depth=2, embedding_dim=transformer_dim, mlp_dim=2048, num_heads=8)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose3d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm3d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose3d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res mask logits (B, 1 or 3, 32, 32, 32) and IoU predictions (B, 1 or 3)."""
        masks, iou_pred = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings,
                                             dense_prompt_embeddings)
        chosen = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, chosen], iou_pred[:, chosen]

    def predict_masks(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                      sparse_prompt_embeddings: torch.Tensor,
                      dense_prompt_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)
        src = image_embeddings
        if src.shape[0] != batch:
            src = torch.repeat_interleave(src, batch, dim=0)
        src = src + dense_prompt_embeddings
        pos = image_pe if image_pe.shape[0] == batch else torch.repeat_interleave(image_pe, batch, dim=0)
        b, c, x, y, z = src.shape
        # segment-anything's transformer flattens two spatial axes; (x, y*z) flattens to the same token order
        hs, src = self.transformer(src.reshape(b, c, x, y * z), pos.reshape(b, c, x, y * z), tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1:1 + self.num_mask_tokens, :]
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, x, y, z))
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                               dim=1)
        b, c, x, y, z = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, x * y * z)).view(b, -1, x, y, z)
        return masks, self.iou_prediction_head(iou_token_out)


def upscale_logits(low_res: torch.Tensor, size: tuple[int, int, int] = (128, 128, 128)) -> torch.Tensor:
    """Trilinear (align_corners=False) upsampling of low-res logits to the input grid, as the official scripts."""
    return F.interpolate(low_res, size=size, mode="trilinear", align_corners=False)
