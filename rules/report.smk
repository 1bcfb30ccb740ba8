# Stage 7: an HTML page with the analysis figures and a picture of one network's MGE.


rule graph_figure:
    input:
        f"{FIGURE_NET.path(RESULTS)}/graphs/mge.npz",
    output:
        report(
            f"{RESULTS}/figures/mge.png",
            category="Encodings",
            caption="../report/figures/mge.rst",
        ),
    log:
        f"{LOGS}/graph_figure.log",
    localrule: True
    conda:
        "../workflow/envs/graph.yaml"
    threads: W.RULE_RESOURCES["graph_figure"]["threads"]
    resources:
        mem_mb=W.RULE_RESOURCES["graph_figure"]["mem_mb"],
        runtime=W.RULE_RESOURCES["graph_figure"]["runtime"],
    params:
        code=W.stage_code("report"),
    script:
        "../workflow/scripts/graph_figure.py"


rule report:
    input:
        summary=f"{RESULTS}/analysis/summary.html",
        figures=FIGURES,
        # the MGE drawing exists only when the config computes the MGE
        graph_figure=(
            [f"{RESULTS}/figures/mge.png"] if "mge" in config["encodings"] else []
        ),
        networks=f"{RESULTS}/tables/networks.csv",
        # the field's figures: accuracy vs sparsity and training curves from the trainings,
        # per-layer density from the masks' metadata
        train_summaries=TRAIN_SUMMARIES,
        masks=net_paths(SPARSE, "mask.safetensors"),
    output:
        **{
            name: report(
                f"{RESULTS}/figures/{name}.png",
                category="Training",
                caption=f"../report/figures/{name}.rst",
            )
            for name in FIELD_FIGURES
        },
        html=ensure(f"{RESULTS}/report.html", non_empty=True),
        accuracy=report(
            f"{RESULTS}/tables/pai_accuracy.csv",
            category="Tables",
            caption="../report/tables/pai_accuracy.rst",
        ),
    log:
        f"{LOGS}/report.log",
    localrule: True
    conda:
        "../workflow/envs/graph.yaml"
    threads: W.RULE_RESOURCES["report"]["threads"]
    resources:
        mem_mb=W.RULE_RESOURCES["report"]["mem_mb"],
        runtime=W.RULE_RESOURCES["report"]["runtime"],
    params:
        code=W.stage_code("report"),
        grid={
            k: config[k]
            for k in ("datasets", "architectures", "methods", "sparsities", "seeds")
        },
    script:
        "../workflow/scripts/report.py"
