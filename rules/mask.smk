# Stage 1: the layer spec of each (dataset, arch) and one PaI mask per grid point.


rule spec:
    output:
        ensure(f"{RESULTS}/{{dataset}}/{{arch}}/layers.json", non_empty=True),
    log:
        f"{LOGS}/spec/{{dataset}}_{{arch}}.log",
        benchmark=f"{BENCH}/spec/{{dataset}}_{{arch}}.tsv",
    benchmark:
        f"{BENCH}/spec/{{dataset}}_{{arch}}.tsv"
    localrule: True
    conda:
        TORCH_ENV
    threads: W.RULE_RESOURCES["spec"]["threads"]
    resources:
        mem_mb=W.RULE_RESOURCES["spec"]["mem_mb"],
        runtime=W.RULE_RESOURCES["spec"]["runtime"],
    params:
        code=lambda wc: W.stage_code("spec", dataset=wc.dataset, arch=wc.arch),
        model=lambda wc: W.model_params(config, wc.dataset, wc.arch),
    script:
        "../workflow/scripts/spec.py"


rule mask:
    input:
        # the data set's node, for the PaI methods that read training batches
        data=mask_data_input,
    output:
        mask=ensure(f"{NET}/mask.safetensors", non_empty=True),
        init=ensure(f"{NET}/init.safetensors", non_empty=True),
    log:
        f"{LOGS}/mask/{NETWORK_ID}.log",
        benchmark=f"{BENCH}/mask/{NETWORK_ID}.tsv",
    benchmark:
        f"{BENCH}/mask/{NETWORK_ID}.tsv"
    # one cluster submission per network: its mask, then its training (rules/train.smk)
    group:
        "network"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=lambda wc: W.mask_resources(config, wc.method)["mem_mb"],
        runtime=lambda wc: W.mask_resources(config, wc.method)["runtime"],
        gpu=lambda wc: W.mask_resources(config, wc.method)["gpu"],
    params:
        code=lambda wc: W.stage_code(
            "mask", dataset=wc.dataset, arch=wc.arch, method=wc.method
        ),
        mask=lambda wc: W.mask_params(config, wc),
    script:
        "../workflow/scripts/mask.py"
