"""A small, independent PyTorch RepVGG used as ground truth by the tests.

Written from the paper's definition (three conv/BN branches summed, SE, ReLU), not from our MindSpore code.
Module names can follow either the official repository or timm, so its real ``state_dict()`` keys exercise
the importer in both namings.
"""

import mindspore as ms
import numpy as np
import torch
from torch import nn

from src.models.variants import RepVGGVariant, get_variant

OFFICIAL = {"dense": "rbr_dense", "one": "rbr_1x1", "ident": "rbr_identity", "fused": "rbr_reparam",
            "se": "se", "down": "down", "up": "up"}
TIMM = {"dense": "conv_kxk", "one": "conv_1x1", "ident": "identity", "fused": "reparam_conv",
        "se": "attn", "down": "fc1", "up": "fc2"}


class TorchConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class TorchSE(nn.Module):
    def __init__(self, channels, names):
        super().__init__()
        self.names = names
        setattr(self, names["down"], nn.Conv2d(channels, channels // 16, 1))
        setattr(self, names["up"], nn.Conv2d(channels // 16, channels, 1))

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        s = getattr(self, self.names["down"])(s).relu()
        return x * torch.sigmoid(getattr(self, self.names["up"])(s))


class TorchRepVGGBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, groups=1, use_se=False, deploy=False, names=OFFICIAL):
        super().__init__()
        self.names, self.deploy = names, deploy
        if use_se:
            setattr(self, names["se"], TorchSE(cout, names))
        self.use_se = use_se
        if deploy:
            setattr(self, names["fused"], nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=True))
        else:
            setattr(self, names["dense"], TorchConvBN(cin, cout, 3, stride, groups))
            setattr(self, names["one"], TorchConvBN(cin, cout, 1, stride, groups))
            self.has_identity = cin == cout and stride == 1
            if self.has_identity:
                setattr(self, names["ident"], nn.BatchNorm2d(cin))

    def forward(self, x):
        n = self.names
        if self.deploy:
            out = getattr(self, n["fused"])(x)
        else:
            out = getattr(self, n["dense"])(x) + getattr(self, n["one"])(x)
            if self.has_identity:
                out = out + getattr(self, n["ident"])(x)
        if self.use_se:
            out = getattr(self, n["se"])(out)
        return out.relu()


class TorchRepVGG(nn.Module):
    def __init__(self, variant: RepVGGVariant, num_classes, deploy=False, naming="official"):
        super().__init__()
        names = TIMM if naming == "timm" else OFFICIAL
        self.naming = naming
        layout = variant.layout
        stem = TorchRepVGGBlock(3, variant.stem_width, layout.stem_stride, 1, variant.use_se, deploy, names)
        stages, cin, layer = [], variant.stem_width, 1
        for depth, width, stride in zip(variant.depths, variant.stage_widths, layout.stage_strides, strict=True):
            blocks = []
            for s in [stride] + [1] * (depth - 1):
                blocks.append(TorchRepVGGBlock(cin, width, s, variant.groups_of(layer), variant.use_se, deploy, names))
                cin, layer = width, layer + 1
            stages.append(nn.Sequential(*blocks))
        fc = nn.Linear(cin, num_classes)
        if naming == "timm":
            self.stem, self.stages = stem, nn.Sequential(*stages)
            self.head = nn.Module()
            self.head.fc = fc
        else:
            self.stage0 = stem
            self.stage1, self.stage2, self.stage3, self.stage4 = stages
            self.linear = fc

    def forward(self, x):
        if self.naming == "timm":
            return self.head.fc(self.stages(self.stem(x)).mean(dim=(2, 3)))
        for stage in (self.stage0, self.stage1, self.stage2, self.stage3, self.stage4):
            x = stage(x)
        return self.linear(x.mean(dim=(2, 3)))


def randomise_torch_batchnorm(model: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            shape = module.weight.shape
            with torch.no_grad():
                module.weight.copy_(torch.rand(shape, generator=generator) * 0.3 + 0.2)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(shape, generator=generator) * 1.5 + 0.5)


def numpy_state(model: nn.Module, prefix: str = "") -> dict:
    return {prefix + k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


class TorchScale(nn.Module):
    """A learnt per-channel multiplier, ``weight``, as in the RepOpt paper's hyper-search blocks."""

    def __init__(self, channels, init):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1)


class TorchRepOptBlock(nn.Module):
    """Plain: conv3x3 -> BN -> ReLU. Search: (s3 * conv3x3 + s1 * conv1x1 [+ s_id * x]) -> BN -> ReLU."""

    def __init__(self, cin, cout, stride, groups, search):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)
        self.search = search
        if search:
            self.scale_conv = TorchScale(cout, 1.0)
            self.conv_1x1 = nn.Conv2d(cin, cout, 1, stride, 0, groups=groups, bias=False)
            self.scale_1x1 = TorchScale(cout, 1.0)
            if cin == cout and stride == 1:
                self.scale_identity = TorchScale(cout, 1.0)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        if not self.search:
            return self.bn(self.conv(x)).relu()
        out = self.scale_conv(self.conv(x)) + self.scale_1x1(self.conv_1x1(x))
        if hasattr(self, "scale_identity"):
            out = out + self.scale_identity(x)
        return self.bn(out).relu()


class TorchRepOptVGG(nn.Module):
    """RepOpt-VGG in the official module layout: ``stage0``, ``stage1``..``stage4``, ``linear``."""

    def __init__(self, variant: RepVGGVariant, num_classes, search=False):
        super().__init__()
        layout = variant.layout
        self.stage0 = TorchRepOptBlock(3, variant.stem_width, layout.stem_stride, 1, search)
        cin, layer = variant.stem_width, 1
        for number, (depth, width, stride) in enumerate(
                zip(variant.depths, variant.stage_widths, layout.stage_strides, strict=True), start=1):
            blocks = []
            for s in [stride] + [1] * (depth - 1):
                blocks.append(TorchRepOptBlock(cin, width, s, variant.groups_of(layer), search))
                cin, layer = width, layer + 1
            setattr(self, f"stage{number}", nn.Sequential(*blocks))
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        for stage in (self.stage0, self.stage1, self.stage2, self.stage3, self.stage4):
            x = stage(x)
        return self.linear(x.mean(dim=(2, 3)))


def randomise_torch_scales(model: nn.Module, seed: int = 0) -> None:
    """Searched scales end far from their init of 1 and differ per channel."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, TorchScale):
            with torch.no_grad():
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) * 1.2 + 0.3)


def torch_repvgg(arch: str, naming: str, deploy: bool = False, num_classes: int = 10, seed: int = 0) -> TorchRepVGG:
    """A RepVGG of a registered arch with trained-looking BatchNorm statistics, in evaluation mode."""
    torch.manual_seed(seed)
    model = TorchRepVGG(get_variant(arch), num_classes, deploy=deploy, naming=naming)
    randomise_torch_batchnorm(model, seed)
    return model.eval()


def torch_repopt(arch: str, search: bool = False, num_classes: int = 10, seed: int = 0) -> TorchRepOptVGG:
    """A RepOpt-VGG (plain, or its hyper-search net) with trained-looking BatchNorm statistics and scales."""
    torch.manual_seed(seed)
    model = TorchRepOptVGG(get_variant(arch), num_classes, search=search)
    randomise_torch_batchnorm(model, seed)
    randomise_torch_scales(model, seed)
    return model.eval()


def torch_scales(model: TorchRepOptVGG) -> dict[str, np.ndarray]:
    """The learnt scales of a hyper-search net, by their state_dict keys."""
    return {k: v for k, v in numpy_state(model).items() if ".scale_" in k}


def inputs(seed: int = 0, size: int = 16) -> np.ndarray:
    """A batch of two random NCHW images for comparing the two implementations."""
    return np.random.default_rng(seed).normal(size=(2, 3, size, size)).astype(np.float32)


def torch_outputs(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def mindspore_outputs(net, x: np.ndarray) -> np.ndarray:
    net.set_train(False)
    return net(ms.Tensor(x)).asnumpy()
