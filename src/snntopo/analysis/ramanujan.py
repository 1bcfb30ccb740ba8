"""Ramanujan metrics versus layer density (paper 4.1), layer by layer.

The paper's claim is that the Ramanujan metrics, on BGEs, carry no more information about
performance than the layer density. The first half of the check is here: across layers, how much of
each metric is explained by the layer's density alone (Pearson for linear, Spearman for any
monotone relation). The second half (predicting the target from Ramanujan features vs density
features with the same model and splits) is in the regression results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from .tables import RAMANUJAN_METRICS


def _corr(d: pd.DataFrame) -> pd.Series:
    x, y = d["layer_density"].to_numpy(float), d["value"].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return pd.Series(
            {"n_layers": len(x), "pearson_r": np.nan, "pearson_p": np.nan,
             "spearman_rho": np.nan, "spearman_p": np.nan}
        )  # fmt: skip
    p, s = pearsonr(x, y), spearmanr(x, y)
    return pd.Series(
        {
            "n_layers": len(x),
            "pearson_r": p.statistic,
            "pearson_p": p.pvalue,
            "spearman_rho": s.statistic,
            "spearman_p": s.pvalue,
        }
    )


def density_correlation(layers: pd.DataFrame) -> pd.DataFrame:
    """ramanujan_density.csv: per encoding, architecture (and ``all``) and metric."""
    long = layers.melt(
        id_vars=["encoding", "arch", "layer_density"],
        value_vars=list(RAMANUJAN_METRICS),
        var_name="metric",
    )
    both = pd.concat([long.assign(arch="all"), long], ignore_index=True)
    out = (
        both.groupby(["encoding", "arch", "metric"], sort=True)
        .apply(_corr, include_groups=False)
        .reset_index()
    )
    out["n_layers"] = out["n_layers"].astype(int)
    out["r2_linear"] = out["pearson_r"] ** 2  # share of variance explained by density, linearly
    return out
