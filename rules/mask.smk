# Stage 1: the layer spec of each (dataset, arch) and one PaI mask per grid point.


rule spec:
    output:
        ensure(f"{RESULTS}/{{dataset}}/{{arch}}/layers.json", non_empty=True),
    log:
        f"{LOGS}/spec/{{dataset}}_{{arch}}.log",
    benchmark:
        f"{BENCH}/spec/{{dataset}}_{{arch}}.tsv"
    conda:
        "../workflow/envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        model=lambda wc: W.model_params(config, wc.dataset, wc.arch),
    script:
        "../workflow/scripts/spec.py"


rule mask:
    output:
        mask=ensure(f"{NET}/mask.safetensors", non_empty=True),
        init=ensure(f"{NET}/init.safetensors", non_empty=True),
    log:
        f"{LOGS}/mask/{NETWORK_ID}.log",
    benchmark:
        f"{BENCH}/mask/{NETWORK_ID}.tsv"
    conda:
        "../workflow/envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: 4000 if wc.method in W.GPU_METHODS else 2000,
        runtime=lambda wc: 60 if wc.method in W.GPU_METHODS else 15,
        gpu=lambda wc: (
            config["resources"]["train_gpus"] if wc.method in W.GPU_METHODS else 0
        ),
        slurm_partition=lambda wc: W.partition(config, wc.method in W.GPU_METHODS),
    params:
        mask=lambda wc: W.mask_params(config, wc),
    script:
        "../workflow/scripts/mask.py"
