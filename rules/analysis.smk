# Stage 6: which topology predicts accuracy, which metrics matter, how PaI methods rank.


# Every file the analysis writes is declared (nothing untracked under results/): the figures
# (PNG with its own caption in the Snakemake report, SVG beside it), the key tables as report
# items, the per-fold and per-network CSVs, the summary and its metadata.
rule analysis:
    input:
        TABLES,
    output:
        csv=[
            ensure(
                (
                    report(
                        f, category="Tables", caption="../report/tables/regression.rst"
                    )
                    if Path(f).stem == "regression"
                    else f
                ),
                non_empty=True,
            )
            for f in ANALYSIS_CSV
        ],
        more_csv=[
            f"{RESULTS}/analysis/{t}.csv"
            for t in (
                "ramanujan_prediction",
                "regression_folds",
                "predictions",
                "normalised",
                "skipped",
                "regression_verdicts",
                "ranking_cells",
                "ranking_verdicts",
            )
        ],
        # fit on one data set, rank the methods on another: only with several data sets
        transfer=[
            f"{RESULTS}/analysis/{t}.csv"
            for t in ("transfer", "transfer_summary")
            if len(config["datasets"]) > 1
        ],
        # leave-one-method-out: the MGE predictor, so only when the MGE is computed
        lomo=[
            f"{RESULTS}/analysis/{t}.csv"
            for t in ("lomo", "lomo_methods", "lomo_verdicts")
            if "mge" in config["encodings"]
        ],
        ranking_summary=report(
            f"{RESULTS}/analysis/ranking_summary.csv",
            category="Tables",
            caption="../report/tables/ranking_summary.rst",
        ),
        figures=[
            report(
                f,
                category="Analysis",
                subcategory="Figures",
                caption=f"../report/figures/{Path(f).stem}.rst",
            )
            for f in FIGURES
        ],
        svg=[f.removesuffix(".png") + ".svg" for f in FIGURES],
        summary=f"{RESULTS}/analysis/summary.html",
        summary_md=f"{RESULTS}/analysis/summary.md",
        meta=f"{RESULTS}/analysis/analysis.json",
    log:
        f"{LOGS}/analysis.log",
        benchmark=f"{BENCH}/analysis.tsv",
    benchmark:
        f"{BENCH}/analysis.tsv"
    localrule: True
    conda:
        "../workflow/envs/graph.yaml"
    threads: W.RULE_RESOURCES["analysis"]["threads"]
    resources:
        mem_mb=W.RULE_RESOURCES["analysis"]["mem_mb"],
        runtime=W.RULE_RESOURCES["analysis"]["runtime"],
    params:
        code=W.stage_code("analysis"),
        tables=lambda wc, input: os.path.dirname(input[0]),
        out=lambda wc, output: os.path.dirname(output.summary),
        analysis=config["analysis"],
    script:
        "../workflow/scripts/analysis.py"
