"""SAM-Med3D and SAM-Med3D-turbo (uni-medical/SAM-Med3D), native: network, weights, TorchIO protocol, clicks."""

from models.sam_med3d.model import SamMed3DModel, sam_med3d, sam_med3d_turbo

__all__ = ["SamMed3DModel", "sam_med3d", "sam_med3d_turbo"]
