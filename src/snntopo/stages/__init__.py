"""One module per pipeline stage: read the input artifacts, call the package, write the outputs
atomically with provenance. ``workflow/scripts/*.py`` are thin adapters onto these, and tests call
them directly, so the DAG and the tests exercise the same code.

Why one module per stage: each rule's code digest (:mod:`snntopo.codedigest`) covers its stage
module and what that imports, so editing the analysis reruns only the analysis. This ``__init__``
therefore imports nothing eagerly; ``snntopo.stages.<function>`` loads its module on first use.
"""

from __future__ import annotations

from ..registry import lazy_attributes

#: stage function -> module
STAGE_FUNCTIONS = {
    "prepare_dataset": "data",
    "make_spec": "spec",
    "make_mask": "mask",
    "write_masked_init": "mask",
    "train_network": "train",
    "load_weights": "encode",
    "encode_network": "encode",
    "compute_metrics": "metrics",
    "build_tables": "tables",
    "run_analysis": "analysis",
    "accuracy_table": "report",
    "make_report": "report",
    "plot_graph": "report",
    "write_predictions": "predict",
}


__getattr__ = lazy_attributes(__name__, STAGE_FUNCTIONS)


__all__ = sorted(STAGE_FUNCTIONS)
