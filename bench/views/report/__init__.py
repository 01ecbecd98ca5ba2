"""The static HTML report of one or more runs: tables, figures, run metadata and coverage, from disk."""

from bench.views.report.write import write_report

__all__ = ["write_report"]
