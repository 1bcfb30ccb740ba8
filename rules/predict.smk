# Optional target `snakemake predict`: the predicted accuracy of the grid's masks from the topology
# of their untrained networks (masks -> encodings -> metrics -> predictor), with no training job.
# The predictor (a directory written by `snntopo fit`) is named by `predict.predictor`.


def predictor_file(wc):
    path = config["predict"]["predictor"]
    if not path:
        raise WorkflowError(
            "the predict target needs predict.predictor in the config "
            "(a directory written by `snntopo fit`)"
        )
    if config["encode"]["weights"] != "init":
        raise WorkflowError(
            "the predict target needs encode.weights: init "
            "(the topology of masks that were never trained)"
        )
    return os.path.join(path, "predictor.json") if os.path.isdir(path) else path


rule predict:
    input:
        predictor=predictor_file,
        metrics=METRIC_FILES,
    output:
        csv=ensure(f"{RESULTS}/predictions/predictions.csv", non_empty=True),
        ranks=f"{RESULTS}/predictions/ranks.csv",
        section=f"{RESULTS}/predictions/predictions.html",
    log:
        f"{LOGS}/predict.log",
    benchmark:
        f"{BENCH}/predict.tsv"
    conda:
        "../workflow/envs/graph.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        out=lambda wc, output: os.path.dirname(output.csv),
    script:
        "../workflow/scripts/predict.py"
