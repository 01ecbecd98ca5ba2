"""SAT Table 11 recomputed: the 72 specialists' 3d_fullres networks as SAT-DS's released plans describe them.

Each network is built by nnunetv2 itself (`get_network_from_plans`, old-format plans converted by its
PlansManager) on PyTorch's meta device, so no weight is allocated and all 72 take seconds. The size is
`sum(p.numel() for p in network.parameters())`: the state dict would count nnU-Net's decoder alias of the encoder
(`decoder.encoder.*`) a second time. The paper's printed rows (`sat_table11.csv`, transcribed from the SAT paper's
appendix) are set beside each recomputed row.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from baselines.nnunet.plans import sat_plans_file
from bench.data.catalog import Catalog, load_catalog
from bench.data.io import InputError

PAPER_TABLE = Path(__file__).with_name("sat_table11.csv")
PAPER_TOTAL_M = 2247  # "The total size of all the nnU-Nets is around 2247M" (Table 11 caption)
CONFIGURATION = "3d_fullres"


@dataclass(frozen=True)
class Row:
    dataset: str
    paper_name: str
    patch_size: tuple[int, ...]
    spacing: tuple[float, ...]
    stages: int
    depth: tuple[int, ...]
    widths: tuple[int, ...]
    parameters: int
    paper_patch_size: tuple[int, ...]
    paper_stages: int
    paper_widths: tuple[int, ...]
    paper_size_m: int

    @property
    def size_m(self) -> float:
        return self.parameters / 1e6

    def differences(self) -> list[str]:
        """What differs from the paper's row: patch size, stages, widths, or the size beyond rounding."""
        found = []
        if self.patch_size != self.paper_patch_size:
            found.append(f"patch {list(self.patch_size)} vs paper {list(self.paper_patch_size)}")
        if self.stages != self.paper_stages or self.widths != self.paper_widths:
            found.append(f"widths {list(self.widths)} vs paper {list(self.paper_widths)}")
        if round(self.size_m) != self.paper_size_m:
            found.append(f"{self.size_m:.2f}M vs paper {self.paper_size_m}M")
        return found


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.strip("[]").split())


def paper_rows(catalog: Catalog | None = None) -> dict[str, dict]:
    """SAT Table 11 as printed, keyed by the catalog's dataset name."""
    catalog = catalog or load_catalog()
    rows = {}
    with PAPER_TABLE.open() as handle:
        for row in csv.DictReader(handle):
            name = catalog.dataset(row["satds_name"]).name
            rows[name] = {"paper_name": row["dataset"], "patch_size": _ints(row["input_size"]),
                          "stages": int(row["stages"]), "depth": _ints(row["depth"]),
                          "widths": _ints(row["width"]), "size_m": int(row["model_size_m"])}
    return rows


def count_parameters(plans: dict, dataset_json: dict, configuration: str = CONFIGURATION) -> tuple[int, dict]:
    """Parameters of the network nnunetv2 builds from `plans` (on the meta device), and the configuration used."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "old nnU-Net plans format": every SAT-DS plan, converted as intended
        manager = PlansManager(json.loads(json.dumps(plans)))
        config = manager.get_configuration(configuration)
    with torch.device("meta"):
        network = get_network_from_plans(
            config.network_arch_class_name, config.network_arch_init_kwargs,
            config.network_arch_init_kwargs_req_import,
            determine_num_input_channels(manager, config, dataset_json),
            manager.get_label_manager(dataset_json).num_segmentation_heads, allow_init=False, deep_supervision=True)
    return sum(p.numel() for p in network.parameters()), config.configuration


def recompute(satds: Path, catalog: Catalog | None = None) -> list[Row]:
    """One Row per dataset of the paper's table, in the paper's order."""
    catalog = catalog or load_catalog()
    rows = []
    for name, paper in paper_rows(catalog).items():
        info = catalog.dataset(name)
        plans_file = sat_plans_file(satds, info)
        try:
            plans = json.loads(plans_file.read_text())
            description = json.loads((plans_file.parent / "dataset.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"{plans_file.parent}: cannot read plans/dataset.json ({error})") from error
        parameters, config = count_parameters(plans, description)
        arch = config["architecture"]["arch_kwargs"]
        rows.append(Row(
            dataset=name, paper_name=paper["paper_name"], patch_size=tuple(config["patch_size"]),
            spacing=tuple(float(s) for s in config["spacing"]), stages=int(arch["n_stages"]),
            depth=tuple(arch["n_conv_per_stage"]), widths=tuple(arch["features_per_stage"]), parameters=parameters,
            paper_patch_size=paper["patch_size"], paper_stages=paper["stages"], paper_widths=paper["widths"],
            paper_size_m=paper["size_m"]))
    return rows


def _list(values) -> str:
    return "[" + " ".join(f"{v:g}" for v in values) + "]"


def table_text(rows: list[Row]) -> str:
    """Markdown table in Table 11's layout (spacing added), the paper's size and any difference beside each row."""
    lines = ["| dataset | input size | spacing (mm) | #stage | #depth | #width | size | paper | differs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.paper_name} | {_list(row.patch_size)} | {_list(round(s, 3) for s in row.spacing)} | "
                     f"{row.stages} | {_list(row.depth)} | {_list(row.widths)} | {row.size_m:.2f}M | "
                     f"{row.paper_size_m}M | {'; '.join(row.differences())} |")
    total = sum(row.parameters for row in rows) / 1e6
    paper_sum = sum(row.paper_size_m for row in rows)
    lines.append(f"\n{len(rows)} networks: {total:.2f}M parameters recomputed; the paper prints {PAPER_TOTAL_M}M "
                 f"(the sum of its rounded sizes is {paper_sum}M). "
                 f"{sum(bool(row.differences()) for row in rows)} row(s) differ from the paper.")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[Row], path: Path) -> None:
    """The recomputed rows with the paper's values beside them, one line per network."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "paper_name", "patch_size", "spacing", "stages", "depth", "widths", "parameters",
                         "size_m", "paper_patch_size", "paper_size_m", "differs"])
        for row in rows:
            writer.writerow([row.dataset, row.paper_name, _list(row.patch_size), _list(row.spacing), row.stages,
                             _list(row.depth), _list(row.widths), row.parameters, f"{row.size_m:.4f}",
                             _list(row.paper_patch_size), row.paper_size_m, "; ".join(row.differences())])
