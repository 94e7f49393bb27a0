"""RepVGG in PyTorch eager mode, the baseline of the speed comparisons, and the child process that times it.

Built from a list of block shapes rather than from ``src.models``, so this process never loads MindSpore (whose
oneDNN cap would otherwise slow PyTorch's own oneDNN, see ``src.cpu_speed_guard``). The deploy form is the
plain VGG-like net -- one 3x3 convolution with bias per block, SE where the arch has it, ReLU -- and takes the
weights MindSpore's ``repvgg_model_convert`` produced under the same parameter names, so both frameworks run
identical maths. The training form (3x3+BN, 1x1+BN, identity BN) only serves the training-step timing.

    python -m benchmarks.torch_repvgg JOB.json      (written by benchmarks.torch_jobs; prints one JSON line)
"""

import json
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from src.timing import time_repeats

# Names in the job's array file that are not weights: MindSpore's input and output for the agreement check.
CHECK_INPUT, CHECK_OUTPUT = "check.input", "check.output"


@dataclass(frozen=True)
class BlockShape:
    in_channels: int
    out_channels: int
    stride: int
    groups: int
    use_se: bool


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.down = nn.Conv2d(channels, channels // 16, 1)
        self.up = nn.Conv2d(channels // 16, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.up(torch.relu(self.down(x.mean(dim=(2, 3), keepdim=True)))))


def conv_bn(shape: BlockShape, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(shape.in_channels, shape.out_channels, kernel_size, shape.stride,
                                   kernel_size // 2, groups=shape.groups, bias=False),
                         nn.BatchNorm2d(shape.out_channels))


class TorchRepVGGBlock(nn.Module):
    def __init__(self, shape: BlockShape, deploy: bool):
        super().__init__()
        self.deploy = deploy
        if deploy:
            self.rbr_reparam = nn.Conv2d(shape.in_channels, shape.out_channels, 3, shape.stride, 1,
                                         groups=shape.groups)
        else:
            self.rbr_dense = conv_bn(shape, 3)
            self.rbr_1x1 = conv_bn(shape, 1)
            has_identity = shape.in_channels == shape.out_channels and shape.stride == 1
            self.rbr_identity = nn.BatchNorm2d(shape.in_channels) if has_identity else None
        self.se = SqueezeExcite(shape.out_channels) if shape.use_se else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            out = self.rbr_reparam(x)
        else:
            out = self.rbr_dense(x) + self.rbr_1x1(x)
            if self.rbr_identity is not None:
                out = out + self.rbr_identity(x)
        return torch.relu(self.se(out))


class TorchRepVGG(nn.Module):
    def __init__(self, shapes: list[BlockShape], num_classes: int, deploy: bool):
        super().__init__()
        self.blocks = nn.Sequential(*[TorchRepVGGBlock(shape, deploy) for shape in shapes])
        self.linear = nn.Linear(shapes[-1].out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.blocks(x).mean(dim=(2, 3)))


def relative_difference(output: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference relative to the largest expected magnitude."""
    return float(np.abs(output - expected).max() / np.abs(expected).max())


def deploy_net_from_state(shapes: list[BlockShape], num_classes: int, state: dict[str, np.ndarray]) -> TorchRepVGG:
    """The plain deploy net holding ``state`` (every parameter, by its TorchRepVGG name), in eval mode."""
    net = TorchRepVGG(shapes, num_classes, deploy=True)
    net.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()},
                        strict=True)
    return net.eval()


def time_inference(net: nn.Module, images: np.ndarray, warmup: int, repeats: int) -> list[float]:
    x = torch.from_numpy(images)
    with torch.inference_mode():
        return list(time_repeats(lambda: net(x), warmup, repeats).seconds)


def time_train_step(shapes: list[BlockShape], num_classes: int, images: np.ndarray, warmup: int,
                    repeats: int) -> list[float]:
    """One step as benchmarks.train_throughput's MindSpore step: forward, soft-target cross entropy, backward,
    global-norm clipping at 5, momentum SGD with weight decay on the conv and linear weights only."""
    torch.manual_seed(0)
    net = TorchRepVGG(shapes, num_classes, deploy=False).train()
    weights = [param for param in net.parameters() if param.ndim > 1]
    others = [param for param in net.parameters() if param.ndim <= 1]   # BatchNorm and biases
    optimizer = torch.optim.SGD([{"params": weights, "weight_decay": 1e-4}, {"params": others}], lr=0.01,
                                momentum=0.9)
    x = torch.from_numpy(images)
    targets = torch.eye(num_classes)[torch.randint(0, num_classes, (len(images),))]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = -(targets * torch.log_softmax(net(x), dim=1)).sum(dim=1).mean()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()

    return list(time_repeats(step, warmup, repeats).seconds)


def run_job(job: dict) -> dict:
    """``job``: what to time (see benchmarks.torch_jobs); returns the timings and what ran them."""
    torch.set_num_threads(job["threads"])
    shapes = [BlockShape(**shape) for shape in job["blocks"]]
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "seconds": {}}
    rng = np.random.default_rng(0)
    size = job["image_size"]
    if job["kind"] == "deploy_inference":
        arrays = dict(np.load(job["arrays"]))
        check_input, expected = arrays.pop(CHECK_INPUT), arrays.pop(CHECK_OUTPUT)
        net = deploy_net_from_state(shapes, job["num_classes"], arrays)
        with torch.inference_mode():
            output = net(torch.from_numpy(check_input)).numpy()
        result["max_relative_difference"] = relative_difference(output, expected)
        for batch in job["batches"]:
            images = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
            result["seconds"][str(batch)] = time_inference(net, images, job["warmup"], job["repeats"])
    else:
        for batch in job["batches"]:
            images = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
            result["seconds"][str(batch)] = time_train_step(shapes, job["num_classes"], images, job["warmup"],
                                                            job["repeats"])
    return result


def main(argv: list[str]) -> None:
    with open(argv[0]) as handle:
        job = json.load(handle)
    print(json.dumps(run_job(job)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
