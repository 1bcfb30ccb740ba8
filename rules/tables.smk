# Stage 5: join every network's accuracy and metric artifacts into the canonical tables.


rule tables:
    input:
        train=TRAIN_SUMMARIES,
        metrics=METRIC_FILES,
    output:
        [ensure(t, non_empty=True) for t in TABLES],
    log:
        f"{LOGS}/tables.log",
        benchmark=f"{BENCH}/tables.tsv",
    benchmark:
        f"{BENCH}/tables.tsv"
    localrule: True
    conda:
        "../workflow/envs/graph.yaml"
    threads: W.RULE_RESOURCES["tables"]["threads"]
    resources:
        mem_mb=W.RULE_RESOURCES["tables"]["mem_mb"],
        runtime=W.RULE_RESOURCES["tables"]["runtime"],
    params:
        code=W.stage_code("tables"),
    script:
        "../workflow/scripts/tables.py"
