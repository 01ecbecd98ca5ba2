"""`bench datasets ...`: list and show the SAT-DS catalog, verify a local copy, and rebuild the catalog data."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.app import HandledGroup
from bench.data.catalog import load_catalog
from bench.data.catalog.cases import dataset_sources, discover_sources
from bench.data.catalog.importer import DATA_DIR, import_satds, write_catalog
from bench.data.catalog.verify import verify_sources

datasets_app = typer.Typer(
    cls=HandledGroup, no_args_is_help=True,
    help="The 72 SAT-DS datasets: classes, regions, splits; verify a local copy.")


@datasets_app.command("list")
def list_datasets() -> None:
    """One line per dataset: modality, region, classes, scans, test split size, nnU-Net id."""
    catalog = load_catalog()
    typer.echo(f"| {'dataset':<28} | {'mod':<3} | {'region':<13} | {'classes':>7} | {'scans':>5} | {'test':>4} |"
               f" {'nnU-Net':<36} |")
    typer.echo(f"|{'-' * 30}|{'-' * 5}|{'-' * 15}|{'-' * 8}:|{'-' * 6}:|{'-' * 5}:|{'-' * 38}|")
    for info in catalog.datasets.values():
        typer.echo(f"| {info.name:<28} | {info.modality:<3} | {info.region:<13} | {len(info.classes):>7} |"
                   f" {info.n_scans:>5} | {len(info.test_ids):>4} | {info.nnunet_name:<36} |")
    typer.echo(f"\n{len(catalog.datasets)} datasets, {len(catalog.terms)} unified classes")


@datasets_app.command("show")
def show(name: str = typer.Argument(..., help="Dataset name, e.g. KiTS23 (case and '_' are ignored).")) -> None:
    """A dataset's facts and its classes in mask-channel order, with region and derivation."""
    info = load_catalog().dataset(name)
    catalog = load_catalog()
    typer.echo(f"{info.name} ({info.modality}; sequences {', '.join(info.sequences)}); region {info.region}")
    typer.echo(f"scans {info.n_scans}; split train {len(info.train_ids)} / test {len(info.test_ids)} ids "
               f"({info.n_test_scans} test scans)")
    typer.echo(f"download {info.download_url}\nnnU-Net {info.nnunet_name}\nSAT-DS orientation {info.orientation}\n")
    rules = dict(info.rules)
    for index, (cls, key) in enumerate(info.term_keys().items()):
        term = catalog.term(key)
        derived = f" = {' + '.join(rules[cls])}" if cls in rules else ""
        flag = " (abnormal)" if term["abnormal"] else ""
        typer.echo(f"{index:>3}  {key:<50} {', '.join(term['regions']):<14} values {list(info.class_values[cls])}"
                   f"{flag}{derived}")


def _classes_to_find(sources, info) -> list[str]:
    """The catalog's classes, or those of the sources' own class maps (a manifest's `classes`) where they differ."""
    catalog_maps = (dict(info.class_values), dict(info.mask_values))
    if all(dict(source.classes) in catalog_maps for source in sources):
        return list(info.classes)
    return list(dict.fromkeys(name for source in sources for name in source.classes))


@datasets_app.command("verify")
def verify(
    name: str = typer.Argument(..., help="Catalog dataset name."),
    root: Path = typer.Option(..., help="Data root: an nnU-Net raw or MSD folder, or the root manifest paths use."),
    manifest: Path = typer.Option(None, help="Manifest of cases (YAML/JSON, or a SAT-DS .jsonl) under --root."),
) -> None:
    """Check every file is present and readable, image/label geometry agrees and every class appears somewhere."""
    info = load_catalog().dataset(name)
    # a manifest brings its own class map; otherwise the layouts evaluate and run read, with catalog classes
    sources = discover_sources(root, manifest) if manifest else dataset_sources(info.name, root, "all", None)
    problems = verify_sources(sources, _classes_to_find(sources, info))
    for problem in problems:
        typer.secho(problem, fg="red")
    typer.echo(f"{info.name}: {len(sources)} case(s) checked, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)


@datasets_app.command("import-satds")
def import_satds_command(
    satds: Path = typer.Argument(..., help="SAT-DS checkout: jsonl/, split_json/, terminology_list.json, nnunet/."),
    out: Path = typer.Option(DATA_DIR, help="Folder for terms.json and datasets.json (default: the catalog's own)."),
) -> None:
    """Rebuild the catalog data files (bench/data/catalog/data/*.json) from a SAT-DS checkout and curated.yaml."""
    catalog = import_satds(satds)
    for path in write_catalog(catalog, out):
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(catalog['datasets'])} datasets, {len(catalog['terms'])} terms")
