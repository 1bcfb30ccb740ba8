# Stage 0: one node per data set that lives on disk (CIFAR-10/100, Tiny-ImageNet): its output is
# the extracted data set's index file under `data_root`. The node fetches the data set through
# torchvision when `download: true`, else fails once with a message saying where it looked and how
# to fix it; the data-driven mask jobs and the training jobs of that data set wait for it. The
# bundled digits have no files, hence no node. Local: a cluster's compute nodes often have no
# internet, and checking a data set is cheap.


# PyTorch's conda env of the torch rules: a CUDA build where the config asks for GPUs
TORCH_ENV = (
    "../workflow/envs/torch-cuda.yaml"
    if config["resources"]["train_gpus"] > 0
    else "../workflow/envs/torch.yaml"
)


def data_input(wc):
    """The data set's node output, for the jobs that read the data ([] for digits)."""
    path = W.dataset_file(config, wc.dataset)
    return [path] if path else []


def mask_data_input(wc):
    return data_input(wc) if W.needs_data(wc.method) else []


from snntopo.data import extracted_index


def data_root_of(index):
    """``params.root`` of a data rule: its output path less the data set's index file (a function
    of the output, not a second hard-coded copy of ``data_root``)."""
    depth = len(Path(index).parts)

    def root(wildcards, output):
        out = Path(output[0])
        # the output is data_root/index by construction
        assert out.parts[-depth:] == Path(index).parts, (out, index)
        return str(out.parents[depth - 1])

    return root


DATA_FILES = {
    d: W.dataset_file(config, d)
    for d in config["datasets"]
    if W.dataset_file(config, d)
}


for _dataset, _index in DATA_FILES.items():

    rule:
        name:
            f"data_{_dataset}"
        output:
            _index,
        log:
            f"{LOGS}/data/{_dataset}.log",
        localrule: True
        conda:
            "../workflow/envs/torch.yaml"
        threads: W.RULE_RESOURCES["data"]["threads"]
        resources:
            mem_mb=W.RULE_RESOURCES["data"]["mem_mb"],
            runtime=W.RULE_RESOURCES["data"]["runtime"],
        params:
            code=W.stage_code("data"),
            dataset=_dataset,
            root=data_root_of(extracted_index(_dataset)),
            download=bool(config["download"]),
        script:
            "../workflow/scripts/data.py"
