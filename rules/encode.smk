# Stage 3: graph encodings (MGE, rolled BGE, rolled-channel BGE) from the layer spec and the masked
# weights. Memory scales with the graph: estimated from the mask, doubled on each retry.


rule encode:
    input:
        spec=f"{RESULTS}/{{dataset}}/{{arch}}/layers.json",
        weights=weights_for_encoding,
        # the weights are checked against the network's mask (same grid point, same digest)
        mask=f"{NET}/mask.safetensors",
    output:
        ensure(f"{NET}/graphs/{{encoding}}.npz", non_empty=True),
    log:
        f"{LOGS}/encode/{NETWORK_ID}_{{encoding}}.log",
        benchmark=f"{BENCH}/encode/{NETWORK_ID}_{{encoding}}.tsv",
    benchmark:
        f"{BENCH}/encode/{NETWORK_ID}_{{encoding}}.tsv"
    retries: 2
    # a network's encodings and metric families run in one cluster submission, and the profile
    # batches several networks into it (group-components)
    group:
        "graphs"
    conda:
        "../workflow/envs/graph.yaml"
    threads: W.RULE_RESOURCES["encode"]["threads"]
    resources:
        mem_mb=lambda wc, input, attempt: W.encode_mem_mb(
            input.spec, input.weights, wc.encoding, attempt, config
        ),
        runtime=W.RULE_RESOURCES["encode"]["runtime"],
    params:
        code=lambda wc: W.stage_code("encode", encoding=wc.encoding),
        encode=lambda wc: {**config["encode"], "network": network_keys(wc)},
    script:
        "../workflow/scripts/encode.py"
