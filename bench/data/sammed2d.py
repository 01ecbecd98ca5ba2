"""Read SA-Med2D-20M-style 2D data (SAM-Med2D's layout) into cases: one PNG slice and its named binary masks.

A data folder holds `images/*.png`, `masks/*.png` (one binary mask per object instance, 0/255 or 0/1) and the
index files SAM-Med2D reads: `image2label_train.json` (image -> [masks]) and `label2image_test.json`
(mask -> image) (SAM-Med2D:DataLoader.py). Index paths start with the folder's own name as the official
scripts saw it (`data_demo/images/x.png`); they are resolved against the folder's parent, else inside the folder.

A mask file is named `<image stem>_<class>_<instance>.png` (SA-Med2D-20M paper, naming convention): its mask
name is `<class>_<instance>` (`liver_000`), and `by_class` merges the instances of a class (`hip_right` =
`hip_right_000` | `hip_right_001`). SAM-Med2D's test.py scores every mask file on its own, i.e. per instance.
PNG slices carry no spacing: cases have spacing (1, 1), so NSD tolerances are in pixels.

The paper's naming convention starts an image name with its modality (`{modality}_{dataset}_{ori_name}_
{dim_slice_id}`, e.g. `ct_00--AbdomenCT1K--Case_00001--z_0085`): `image_modality` reads it when the first word is
CT, MR(I) or PET, and nothing else (the demo's `amos_0004_75` names no modality; the harness never guesses one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from bench.data.io import InputError, Volume
from protocols.terms import modality_prefix

INDEX_FILES = {"train": "image2label_train.json", "test": "label2image_test.json"}
_INSTANCE = re.compile(r"^(?P<cls>.+)_(?P<instance>\d+)$")
_MODALITY_NAMES = {"ct": "CT", "mri": "MRI", "pet": "PET"}
PLANE_SPACING = (1.0, 1.0)


@dataclass(frozen=True, eq=False)
class SliceCase:
    """A 2D case: the slice (rows, columns[, 3]) uint8, its masks by name, where they came from."""

    case_id: str
    image: np.ndarray
    masks: dict[str, np.ndarray]
    image_path: Path
    mask_paths: dict[str, Path] = field(repr=False)
    spacing: tuple[float, float] = PLANE_SPACING

    def plane(self) -> np.ndarray:
        """The slice as one grey channel (SA-Med2D PNGs store grey slices as three equal channels)."""
        if self.image.ndim == 2:
            return self.image
        if not (np.array_equal(self.image[..., 0], self.image[..., 1])
                and np.array_equal(self.image[..., 0], self.image[..., 2])):
            raise InputError(f"{self.image_path}: a colour image, not a grey slice")
        return self.image[..., 0]

    def classes(self) -> dict[str, int]:
        """The class map for `protocols.case.evaluate_case` with per-mask dicts (values only need to be > 0)."""
        return {name: 1 for name in self.masks}

    def by_class(self) -> dict[str, np.ndarray]:
        """The masks with the instances of each class merged (`liver_000`, `liver_001` -> `liver`)."""
        merged: dict[str, np.ndarray] = {}
        for name, mask in self.masks.items():
            match = _INSTANCE.match(name)
            key = match["cls"] if match else name
            merged[key] = merged[key] | mask if key in merged else mask.copy()
        return merged


def is_data_folder(path: Path) -> bool:
    """Whether `path` is an SA-Med2D-style data folder (it holds one of the index files)."""
    return Path(path).is_dir() and any((Path(path) / name).is_file() for name in INDEX_FILES.values())


def image_modality(stem: str) -> str | None:
    """CT, MRI or PET when an image name starts with that modality word (SA-Med2D-20M naming), else None."""
    word = re.split(r"[_\-]", stem, maxsplit=1)[0]
    try:
        return _MODALITY_NAMES[modality_prefix(word)]
    except ValueError:
        return None


def data_modality(root: Path, images: Iterable[Path], explicit: str | None = None) -> str:
    """`explicit` (--modality) when given, else the one modality that every image name starts with."""
    if explicit is not None:
        try:
            modality_prefix(explicit)
        except ValueError as error:
            raise InputError(f"--modality: {error}") from None
        return explicit
    found = {path.name: image_modality(path.stem) for path in images}
    unnamed = [name for name, modality in found.items() if modality is None]
    if unnamed:
        raise InputError(f"{root}: the modality is unknown (image {unnamed[0]} does not start with ct_, mr_ or "
                         "pet_ as SA-Med2D-20M names do); pass --modality CT, MRI or PET")
    if len(set(found.values())) > 1:
        raise InputError(f"{root}: images of several modalities ({', '.join(sorted(set(found.values())))}); "
                         "score each modality from its own folder")
    return next(iter(found.values()))


def read_index(root: Path, split: str = "test") -> dict[Path, list[Path]]:
    """Image path -> its mask paths, from the split's index file, every path resolved and checked."""
    if split not in INDEX_FILES:
        raise InputError(f"unknown split {split!r}; known: {', '.join(INDEX_FILES)}")
    root = Path(root)
    index_path = root / INDEX_FILES[split]
    if not index_path.is_file():
        raise InputError(f"{index_path}: no such index file")
    try:
        entries = json.loads(index_path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{index_path}: not valid JSON ({error})") from None
    if not isinstance(entries, dict):
        raise InputError(f"{index_path}: expected a JSON object")
    pairs = ([(image, mask) for image, masks in entries.items() for mask in masks] if split == "train"
             else [(image, mask) for mask, image in entries.items()])
    index: dict[Path, list[Path]] = {}
    for image, mask in pairs:
        index.setdefault(_resolve(root, image, index_path), []).append(_resolve(root, mask, index_path))
    return index


def _resolve(root: Path, entry: str, index_path: Path) -> Path:
    relative = Path(entry)
    for candidate in (root.parent / relative, root / Path(*relative.parts[1:])):
        if candidate.is_file():
            return candidate
    raise InputError(f"{index_path}: {entry} does not exist under {root}")


def _read_png(path: Path) -> np.ndarray:
    try:
        with PILImage.open(path) as image:
            return np.array(image)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: unreadable image ({error})") from None


def read_mask(path: Path) -> np.ndarray:
    """A binary mask PNG (0/255 or 0/1; one channel, or three equal ones as SAM-Med2D's test.py saves its
    predictions) as a boolean array."""
    mask = _read_png(path)
    if mask.ndim == 3 and mask.shape[2] == 3:
        if not (np.array_equal(mask[..., 0], mask[..., 1]) and np.array_equal(mask[..., 0], mask[..., 2])):
            raise InputError(f"{path}: a colour mask (its three channels differ); expected a binary mask")
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise InputError(f"{path}: a mask must have one channel or three equal ones, got shape {mask.shape}")
    values = set(np.unique(mask).tolist())
    if not values <= {0, 1} and not values <= {0, 255}:
        raise InputError(f"{path}: a mask must hold 0/1 or 0/255, found values {sorted(values)[:8]}")
    return mask > 0


def mask_volume(path: Path) -> Volume:
    """A mask PNG as a 2D boolean volume with unit spacing (what the scorer's geometry checks compare)."""
    return Volume(read_mask(path), PLANE_SPACING, np.eye(4), Path(path))


def write_mask(path: Path, mask: np.ndarray) -> Path:
    """A boolean mask as a one-channel 0/255 PNG (SAM-Med2D's value convention)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path)
    return path


def mask_name(mask_path: Path, image_stem: str) -> str:
    """`amos_0004_75_liver_000.png` of image `amos_0004_75` -> `liver_000`."""
    stem, prefix = Path(mask_path).stem, image_stem + "_"
    return stem[len(prefix):] if stem.startswith(prefix) and len(stem) > len(prefix) else stem


def read_case(image_path: Path, mask_paths: list[Path]) -> SliceCase:
    image = _read_png(image_path)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise InputError(f"{image_path}: expected an 8-bit grey or RGB slice, got {image.dtype} {image.shape}")
    masks, paths = {}, {}
    for path in mask_paths:
        name = mask_name(path, image_path.stem)
        if name in masks:
            raise InputError(f"{path}: a second mask named {name!r} for {image_path.name}")
        mask = read_mask(path)
        if mask.shape != image.shape[:2]:
            raise InputError(f"{path}: mask shape {mask.shape} differs from image shape {image.shape[:2]}")
        masks[name], paths[name] = mask, path
    return SliceCase(image_path.stem, image, masks, image_path, paths)


def read_cases(root: Path, split: str = "test") -> Iterator[SliceCase]:
    """Every case of a split, in index order."""
    for image_path, mask_paths in read_index(root, split).items():
        yield read_case(image_path, mask_paths)
