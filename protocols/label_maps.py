"""Class masks from label maps: a class's voxels (one label value or several), and masks through one label map,
as a script that writes all classes of a case into one file does.

SAM-Med3D's current `validate_paired_img_gt` (uni-medical/SAM-Med3D@f3de1fa utils/infer_utils.py:393-409)
predicts the classes of a case one at a time, in ascending label order, and writes each into one combined map
(`final[cls_pred == 1] = category_index`): a voxel two classes claim keeps the later class. Its metrics then
read each class back from that map (utils/metric_utils.py:98-99, `pred_data == i`). Pure: masks in, masks out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from protocols.errors import BenchError


def label_values(value: int | Sequence[int]) -> tuple[int, ...]:
    """A class's label values: one value or several (a class made of several labels)."""
    scalar = isinstance(value, (int, np.integer)) or np.isscalar(value)  # the first test is the fast one
    return (int(value),) if scalar else tuple(int(v) for v in value)


def class_mask(label_map: np.ndarray, value: int | Sequence[int]) -> np.ndarray:
    """The voxels of a class given by one label value or several (their union)."""
    values = label_values(value)
    return label_map == values[0] if len(values) == 1 else np.isin(label_map, values)


def overwrite_in_order(masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each class's mask as read back from one label map written in the mapping's order (later classes
    overwrite earlier ones); masks of one shape, boolean."""
    names = list(masks)
    if not names:
        return {}
    shapes = {np.shape(masks[name]) for name in names}
    if len(shapes) != 1:
        raise BenchError(f"masks of one label map must share a shape, got {sorted(shapes)}")
    label_map = np.zeros(shapes.pop(), np.int32)
    for value, name in enumerate(names, 1):
        label_map[np.asarray(masks[name], bool)] = value
    return {name: label_map == value for value, name in enumerate(names, 1)}
