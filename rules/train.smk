# Stage 2: train each masked network (and the dense baselines); resumes from its checkpoint.


rule train:
    input:
        mask=f"{NET}/mask.safetensors",
        data=data_input,
    output:
        model=ensure(f"{NET}/model.safetensors", non_empty=True),
        summary=ensure(f"{NET}/train.json", non_empty=True),
        # the per-epoch history of train.json as CSV (snntopo.train.history)
        history=ensure(f"{NET}/history.csv", non_empty=True),
    log:
        f"{LOGS}/train/{NETWORK_ID}.log",
        benchmark=f"{BENCH}/train/{NETWORK_ID}.tsv",
    benchmark:
        f"{BENCH}/train/{NETWORK_ID}.tsv"
    group:
        "network"
    conda:
        TORCH_ENV
    threads: lambda wc: config["resources"]["train_cpus"]
    resources:
        mem_mb=lambda wc, attempt: config["resources"]["train_mem_mb"] * attempt,
        runtime=lambda wc: W.train_runtime_min(config, wc.dataset, wc.arch),
        gpu=config["resources"]["train_gpus"],
    params:
        code=lambda wc: W.stage_code("train", dataset=wc.dataset, arch=wc.arch),
        train=lambda wc: W.train_params(config, wc),
        # not an output: it must survive a killed job so the rerun resumes from it
        # in a hidden folder with the lock, the attempts' log and the kept final state: training
        # state, not results (snakemake --list-untracked skips hidden folders)
        checkpoint=f"{NET}/.train/checkpoint.pt",
    script:
        "../workflow/scripts/train.py"
