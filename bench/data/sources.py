"""The cases a model runs on (`bench run`, `bench clicks`): images with their reference label maps, from the
catalog, a catalog-style folder or ad-hoc folders. What they are scored against is resolved by the one
resolution `bench evaluate` uses too (`bench.data.targets.resolve_references`); this adds the images of an ad-hoc
`--images` folder and the run.json label, before any model or engine is loaded (a bad option is answered in well
under a second)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.data.catalog.cases import CaseSource, with_catalog_orientation
from bench.data.io import InputError
from bench.data.matching import case_id_for, list_cases
from bench.data.targets import resolve_references
from protocols.label_maps import label_values


def folder_sources(images: Path, refs: Path, classes: Mapping[str, int | Sequence[int]], *,
                   dataset: str | None, modality: str) -> list[CaseSource]:
    """Cases of ad-hoc folders: an image per reference in `images` (`<case>_0000.nii.gz` or `<case>.nii.gz`,
    matched to reference names as `bench evaluate` matches predictions), label maps in `refs`."""
    ref_files = list_cases(refs)
    if not ref_files:
        raise InputError(f"{refs}: no reference volumes found")
    image_files = {case_id_for(name, ref_files): path for name, path in list_cases(images).items()}
    missing = sorted(set(ref_files) - set(image_files))
    if missing:
        raise InputError(f"{images}: no image for reference case(s) {', '.join(missing[:10])}")
    values = {name: label_values(value) for name, value in classes.items()}
    return [CaseSource(case, image_files[case], ref_files[case], modality, values, dataset)
            for case in sorted(ref_files)]


def resolve_sources(*, dataset: str | None = None, root: Path | None = None, split: str = "test",
                    manifest: Path | None = None, images: Path | None = None, refs: Path | None = None,
                    classes: Path | None = None, labels: str | None = None,
                    modality: str | None = None) -> tuple[list[CaseSource], str]:
    """The cases of `bench run`/`bench clicks` and a label for run.json: a catalog dataset (`--dataset NAME --root
    DIR`: SAT's split, catalog classes and modality), a catalog-style folder of another dataset (`--root DIR`:
    its dataset.json or manifest), or ad-hoc folders (`--images DIR --refs DIR`, classes as `bench evaluate`
    takes them); an SA-Med2D folder of 2D PNG slices as `--root` gives its split's images as cases. Each 3D case
    carries its catalog dataset's SAT-DS orientation (`with_catalog_orientation`)."""
    if images is not None or refs is not None:
        if images is None or refs is None or root is not None:
            raise InputError("give --images and --refs together, or --root (not both)")
        target = resolve_references(ref=refs, root=None, dataset=dataset or refs.name, modality=modality,
                                    classes=classes, labels=labels)
        sources = folder_sources(images, refs, target.classes, dataset=target.dataset, modality=target.modality)
        return with_catalog_orientation(sources), f"images={images.resolve()} refs={refs.resolve()}"
    if root is None:
        raise InputError("give --dataset NAME --root DIR, or --images DIR --refs DIR")
    if classes is not None or labels is not None:
        raise InputError("--root takes its cases and class map from the dataset; drop --classes/--labels")
    target = resolve_references(ref=None, root=root, dataset=dataset, split=split, manifest=manifest,
                                modality=modality)
    label = f"root={root.resolve()} split={split}" + (f" manifest={manifest}" if manifest else "")
    sources = list(target.sources)
    return (with_catalog_orientation(sources) if target.ndim == 3 else sources), label  # 2D slices: no axes


def planar(sources: Sequence[CaseSource]) -> bool:
    """Whether the cases are 2D PNG slices (an SA-Med2D folder): distances and tolerances are in pixels."""
    return any(isinstance(source.label, tuple) for source in sources)


def tolerance_unit(sources: Sequence[CaseSource]) -> str:
    """How the NSD tolerance of these cases reads: mm, or pixels for 2D PNG slices (no spacing)."""
    return "pixel (PNG slices carry no spacing)" if planar(sources) else "mm"
