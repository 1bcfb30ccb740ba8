# Stage 4: one rule per metric family (generated from the registry, so a new family is a new
# module plus one registry line); each writes one small JSON per network covering every encoding
# the family applies to.


def _metric_graphs(family):
    def graphs(wc):
        return {
            enc: f"{gridpoint.wildcards_dir(RESULTS, wc)}/graphs/{enc}.npz"
            for enc in W.family_encodings(config, family)
        }

    return graphs


for _family in FAMILIES_ACTIVE:

    rule:
        name:
            f"metrics_{_family}"
        input:
            unpack(_metric_graphs(_family)),
        output:
            ensure(f"{NET}/metrics/{_family}.json", non_empty=True),
        log:
            f"{LOGS}/metrics_{_family}/{NETWORK_ID}.log",
            benchmark=f"{BENCH}/metrics_{_family}/{NETWORK_ID}.tsv",
        benchmark:
            f"{BENCH}/metrics_{_family}/{NETWORK_ID}.tsv"
        retries: 2
        group:
            "graphs"
        conda:
            "../workflow/envs/graph.yaml"
        threads: W.family_threads(_family)
        resources:
            mem_mb=W.metrics_mem_function(_family, config),
            runtime=W.RULE_RESOURCES["metrics"]["runtime"],
        params:
            code=W.stage_code("metrics", family=_family),
            family=_family,
            metrics=lambda wc: {
                **{k: v for k, v in config["metrics"].items() if k != "families"},
                "seed": int(wc.seed),
                "network": network_keys(wc),
            },
        script:
            "../workflow/scripts/metrics.py"
