# Stage 6: which topology predicts accuracy, which metrics matter, how PaI methods rank.


rule analysis:
    input:
        TABLES,
    output:
        csv=[ensure(f, non_empty=True) for f in ANALYSIS_CSV],
        figures=[
            report(f, category="Analysis", caption="../report/analysis.rst")
            for f in FIGURES
        ],
        summary=f"{RESULTS}/analysis/summary.html",
    log:
        f"{LOGS}/analysis.log",
    benchmark:
        f"{BENCH}/analysis.tsv"
    conda:
        "../workflow/envs/graph.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=W.stage_code("analysis"),
        tables=lambda wc, input: os.path.dirname(input[0]),
        out=lambda wc, output: os.path.dirname(output.summary),
        analysis=config["analysis"],
    script:
        "../workflow/scripts/analysis.py"
