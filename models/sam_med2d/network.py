"""SAM-Med2D's network, built on the official `segment-anything` modules plus its adapters.

SAM-Med2D is SAM ViT-B at a 256 x 256 input (16 x 16 tokens) whose 314 non-adapter state-dict keys equal
segment-anything's at that size (SAM-Med2D:segment_anything/build_sam.py:60-109). It adds one adapter per
encoder block (modeling/image_encoder.py:18-56, block forward :232-236): `x + mlp(norm2 x) + Adapter(norm2 x)`,
the adapter a channel gate and a stride-2 conv / transposed-conv pair with a skip, then a LayerNorm with
eps 1e-5 (PyTorch's default, unlike the blocks' 1e-6). Its mask decoder pairs prompt row i with image i
instead of repeating every image for every prompt row (modeling/mask_decoder.py:126-129).

Checkpoint `sam-med2d_b.pth` is `{'model': state_dict, 'optimizer': <optimizer object>}` (train.py:207, 274);
the official loader uses strict=False, we load `model` strictly (`LAYOUT`) and never the optimizer.
"""

from __future__ import annotations

from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.modeling.image_encoder import Block, window_partition, window_unpartition
from torch import nn

from models.checkpoints import CheckpointLayout

IMAGE_SIZE = 256
PATCH = 16
EMBED_DIM, DEPTH, HEADS, GLOBAL_BLOCKS = 768, 12, 12, (2, 5, 8, 11)
PROMPT_DIM = 256
LAYOUT = CheckpointLayout(key="model")


class Adapter(nn.Module):
    """SAM-Med2D's Adapter_Layer: channel gate, then a stride-2 conv and transposed conv with a skip, then norm.
    Takes and returns (B, H, W, C)."""

    def __init__(self, dim: int, ratio: float = 0.25):
        super().__init__()
        hidden = int(dim * ratio)
        self.norm = nn.LayerNorm(dim)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.channel = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(),
                                     nn.Linear(hidden, dim, bias=False), nn.Sigmoid())
        self.spatial = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1, bias=False), nn.ReLU(),
            nn.ConvTranspose2d(dim, dim, kernel_size=4, stride=2, padding=1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        gate = self.channel(self.avg_pool(x).flatten(1))[:, :, None, None]
        x = x + self.spatial(gate * x)
        return self.norm(x.permute(0, 2, 3, 1))


class AdapterBlock(Block):
    """segment-anything's encoder block with SAM-Med2D's adapter beside the MLP."""

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, **kwargs)
        self.Adapter = Adapter(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            height, width = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
        x = self.attn(x)
        if self.window_size > 0:
            x = window_unpartition(x, self.window_size, pad_hw, (height, width))
        x = shortcut + x
        normed = self.norm2(x)
        return x + self.mlp(normed) + self.Adapter(normed)


class PerImageMaskDecoder(MaskDecoder):
    """segment-anything's mask decoder with prompt row i decoded against image i only (SAM-Med2D)."""

    def predict_masks(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings):
        if image_embeddings.shape[0] != sparse_prompt_embeddings.shape[0]:
            raise ValueError(f"SAM-Med2D decodes one prompt set per image: {image_embeddings.shape[0]} images, "
                             f"{sparse_prompt_embeddings.shape[0]} prompt sets")
        rows = [super(PerImageMaskDecoder, self).predict_masks(image_embeddings[i:i + 1], image_pe,
                                                                sparse_prompt_embeddings[i:i + 1],
                                                                dense_prompt_embeddings[i:i + 1])
                for i in range(image_embeddings.shape[0])]
        return torch.cat([masks for masks, _ in rows]), torch.cat([iou for _, iou in rows])


def _image_encoder() -> ImageEncoderViT:
    norm = partial(nn.LayerNorm, eps=1e-6)
    encoder = ImageEncoderViT(img_size=IMAGE_SIZE, patch_size=PATCH, embed_dim=EMBED_DIM, depth=0,
                              num_heads=HEADS, mlp_ratio=4, out_chans=PROMPT_DIM, qkv_bias=True,
                              norm_layer=norm, use_rel_pos=True, window_size=14, global_attn_indexes=GLOBAL_BLOCKS)
    grid = IMAGE_SIZE // PATCH
    for index in range(DEPTH):
        encoder.blocks.append(AdapterBlock(
            EMBED_DIM, num_heads=HEADS, mlp_ratio=4, qkv_bias=True, norm_layer=norm, use_rel_pos=True,
            window_size=0 if index in GLOBAL_BLOCKS else 14, input_size=(grid, grid)))
    return encoder


def build_sam_med2d(*, device: str | torch.device = "cpu") -> Sam:
    """SAM-Med2D ViT-B (256 input, adapters, eval mode) with random initialisation."""
    grid = IMAGE_SIZE // PATCH
    with torch.device(device):
        return Sam(
            image_encoder=_image_encoder(),
            prompt_encoder=PromptEncoder(embed_dim=PROMPT_DIM, image_embedding_size=(grid, grid),
                                         input_image_size=(IMAGE_SIZE, IMAGE_SIZE), mask_in_chans=16),
            mask_decoder=PerImageMaskDecoder(
                num_multimask_outputs=3, transformer_dim=PROMPT_DIM, iou_head_depth=3, iou_head_hidden_dim=256,
                transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_DIM, mlp_dim=2048, num_heads=8)),
        ).eval()
