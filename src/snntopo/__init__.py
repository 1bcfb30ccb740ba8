"""snntopo: topology of sparse neural networks made by pruning at initialization.

The package holds all logic of the workflow (models, data, PaI methods, training, graph encodings,
metrics, tables, analysis and plots); the Snakemake rules only schedule calls into it.
"""

__version__ = "0.1.0"
