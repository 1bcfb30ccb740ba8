"""The job parameters of the smallest network the stage tests run: the paper's ResNet-20 at
quarter width on 8x8 digits, on the CPU, no download. Tests add method, sparsity, seed and paths."""

TINY_DIGITS_JOB = {
    "arch": "resnet20",
    "dataset": "digits",
    "num_classes": 10,
    "in_channels": 3,
    "input_size": 8,
    "width": 0.25,
    "device": "cpu",
    "download": False,
    "pai": {},
}
