"""SAT-Nano and SAT-Pro (zhaoziheng/SAT): text-prompted universal segmentation, reimplemented natively."""
