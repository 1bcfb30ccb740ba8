"""Wide-ResNet-28-2 (Zagoruyko & Komodakis 2016): pre-activation basic blocks, widths
16 | 32 | 64 | 128, 1x1 ``conv_shortcut`` where the channel count changes, dropout 0."""

from __future__ import annotations

from torch import nn

from .common import scaled


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = c_in == c_out and stride == 1
        self.conv_shortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(c_in, c_out, 1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x):
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        if self.conv_shortcut is None:
            return out + x
        # Like the reference WRN, the projection shortcut sees the pre-activated input.
        return out + self.conv_shortcut(act)


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 28,
        widen: int = 2,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"Wide-ResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        c0, c1, c2, c3 = (scaled(c, width) for c in (16, 16 * widen, 32 * widen, 64 * widen))
        self.conv1 = nn.Conv2d(in_channels, c0, 3, padding=1, bias=False)
        self.block1 = self._group(c0, c1, n, 1)
        self.block2 = self._group(c1, c2, n, 2)
        self.block3 = self._group(c2, c3, n, 2)
        self.bn = nn.BatchNorm2d(c3)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3, num_classes)

    @staticmethod
    def _group(c_in: int, c_out: int, n: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            *[
                PreActBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                for i in range(n)
            ]
        )

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(self.flatten(self.pool(self.relu(self.bn(out)))))


def wrn28_2(**kw) -> WideResNet:
    return WideResNet(28, 2, **kw)
