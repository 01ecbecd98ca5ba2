"""SAM-Med3D and SAM-Med3D-turbo (uni-medical/SAM-Med3D), native: network, weights, TorchIO protocol, clicks."""
