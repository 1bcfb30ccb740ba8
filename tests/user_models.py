"""A user's own model factory, imported by tests as ``module:user_models:make``."""

from torch import nn


def make(num_classes: int, in_channels: int, input_size: int, hidden: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(hidden * 4, num_classes),
    )


class SameStem(nn.Module):
    """Research-code spellings: a 4x4 ``padding='same'`` stem (torch pads one side more) and a
    flatten written ``x.view(x.shape[0], -1)``."""

    def __init__(self, num_classes: int, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, hidden, 4, padding="same", bias=False)
        self.conv = nn.Conv2d(hidden, hidden, 3, stride=2, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(hidden * 4, num_classes)

    def forward(self, x):
        b, c, h, w = x.shape
        x = self.pool(self.conv(self.stem(x).relu()).relu())
        return self.fc(x.view(x.shape[0], -1))


def make_same(num_classes: int, in_channels: int, input_size: int, hidden: int = 4) -> nn.Module:
    return SameStem(num_classes, in_channels, hidden)


class SwapHW(nn.Module):
    """A conv on a tensor whose H and W are swapped (no static graph rule covers it)."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(in_channels, 4, 1)
        self.b = nn.Conv2d(4, num_classes, 1)

    def forward(self, x):
        return self.b(self.a(x).permute(0, 1, 3, 2)).mean((2, 3))


def make_unsupported(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    return SwapHW(num_classes, in_channels)
