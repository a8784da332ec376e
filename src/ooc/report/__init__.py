"""Reports and comparisons for scientists, from the catalog and the results stores.

- :func:`write_report` - one self-contained HTML file about a sample: per scale, orthoslices of
  the grey scan with its segmentation, size distributions, properties, provenance, run times;
- :func:`compare_samples` - the key numbers of several samples side by side (a DataFrame);
  :func:`format_comparison` prints it, :func:`plot_comparison` draws it.
"""

from ooc.report.compare import compare_samples, format_comparison
from ooc.report.figures import plot_comparison
from ooc.report.writer import write_report

__all__ = ["compare_samples", "format_comparison", "plot_comparison", "write_report"]
