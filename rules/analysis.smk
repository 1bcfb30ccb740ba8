# Stage 6: which topology predicts accuracy, which metrics matter, how PaI methods rank.


rule analysis:
    input:
        TABLES,
    output:
        csv=ANALYSIS_CSV,
        figures=[
            report(f, category="Analysis", caption="../report/analysis.rst")
            for f in FIGURES
        ],
        summary=RESULTS + "/analysis/summary.html",
    log:
        LOGS + "/analysis.log",
    benchmark:
        BENCH + "/analysis.tsv"
    conda:
        "../workflow/envs/graph.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        tables=RESULTS + "/tables",
        out=RESULTS + "/analysis",
        analysis=config["analysis"],
    script:
        "../workflow/scripts/analysis.py"
