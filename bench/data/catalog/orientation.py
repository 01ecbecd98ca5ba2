"""The axes SAT-DS reorients a dataset's scans to before resampling (`Orientationd(axcodes=...)` in its loader)."""

from __future__ import annotations

from protocols.errors import BenchError

SAT_ORIENTATION = "RAS"
NO_REORIENTATION = "none"  # MyoPS2020: SAT-DS's loader keeps the scan's own axes
AXIS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # nibabel's letters, and MONAI 1.1's (SAT's pin) default


def orientation_code(orientation: str | None) -> str:
    """A validated axis code (`RAS`, `ASR`, ...: one letter of each pair in AXIS_LABELS) or `none`."""
    if orientation is None or str(orientation).lower() == NO_REORIENTATION:
        return NO_REORIENTATION
    code = str(orientation).upper()
    if len(code) != 3 or any(sum(letter in pair for letter in code) != 1 for pair in AXIS_LABELS):
        raise BenchError(f"orientation {orientation!r} is not an axis code such as RAS, ASR or LPS, nor 'none'")
    return code
