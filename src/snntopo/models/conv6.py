"""Conv-6 (Frankle & Carbin's CONV-6 as used by the paper): six 3x3 convs, three max-pools, three
linear layers. Convs carry biases (trained, never pruned)."""

from __future__ import annotations

from torch import nn

from .common import scaled


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=True), nn.BatchNorm2d(c_out), nn.ReLU()]


class Conv6(nn.Module):
    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0
    ) -> None:
        super().__init__()
        if input_size % 8:
            raise ValueError(f"Conv-6 needs an input size divisible by 8, got {input_size}")
        c1, c2, c3, h = (scaled(c, width) for c in (64, 128, 256, 256))
        self.features = nn.Sequential(
            *_conv_bn(in_channels, c1),
            *_conv_bn(c1, c1),
            nn.MaxPool2d(2),
            *_conv_bn(c1, c2),
            *_conv_bn(c2, c2),
            nn.MaxPool2d(2),
            *_conv_bn(c2, c3),
            *_conv_bn(c3, c3),
            nn.MaxPool2d(2),
        )
        flat = c3 * (input_size // 8) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, h),
            nn.BatchNorm1d(h),
            nn.ReLU(),
            nn.Linear(h, h),
            nn.BatchNorm1d(h),
            nn.ReLU(),
            nn.Linear(h, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
