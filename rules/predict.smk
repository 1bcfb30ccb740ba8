# Optional target `snakemake predict`: the predicted accuracy of the grid's masks from the topology
# of their untrained networks (masks -> encodings -> metrics -> predictor), with no training job.
# The predictor (a directory written by `snntopo fit`) is named by `predict.predictor`.


from snntopo.analysis.predict_rule import predictor_input


rule predict:
    input:
        predictor=lambda wc: predictor_input(config),
        metrics=METRIC_FILES,
    output:
        csv=ensure(f"{RESULTS}/predictions/predictions.csv", non_empty=True),
        ranks=f"{RESULTS}/predictions/ranks.csv",
        section=f"{RESULTS}/predictions/predictions.html",
        section_md=f"{RESULTS}/predictions/predictions.md",
        meta=f"{RESULTS}/predictions/predictions.json",
    log:
        f"{LOGS}/predict.log",
        benchmark=f"{BENCH}/predict.tsv",
    benchmark:
        f"{BENCH}/predict.tsv"
    conda:
        "../workflow/envs/graph.yaml"
    threads: W.RULE_RESOURCES["predict"]["threads"]
    resources:
        mem_mb=W.RULE_RESOURCES["predict"]["mem_mb"],
        runtime=W.RULE_RESOURCES["predict"]["runtime"],
    params:
        code=W.stage_code("predict"),
        out=lambda wc, output: os.path.dirname(output.csv),
    script:
        "../workflow/scripts/predict.py"
