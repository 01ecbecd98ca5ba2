"""Dataset catalog and unified label system: the 72 SAT-DS datasets, 498 terms, regions, splits, derived classes."""

from bench.data.catalog.catalog import Catalog, CatalogError, DatasetInfo, build_catalog, load_catalog
from bench.data.catalog.names import class_name, nnunet_class_name
from bench.data.catalog.rules import apply_rules, class_masks, resolve_rules
from protocols.terms import MODALITIES, modality_prefix, term_key

__all__ = [
    "MODALITIES",
    "Catalog",
    "CatalogError",
    "DatasetInfo",
    "apply_rules",
    "build_catalog",
    "class_masks",
    "class_name",
    "load_catalog",
    "modality_prefix",
    "nnunet_class_name",
    "resolve_rules",
    "term_key",
]
