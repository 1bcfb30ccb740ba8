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
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=W.stage_code("tables"),
    script:
        "../workflow/scripts/tables.py"
