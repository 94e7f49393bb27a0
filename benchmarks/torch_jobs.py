"""The PyTorch side of the benchmarks, run in a child process (``benchmarks.torch_repvgg``).

A child process because MindSpore needs oneDNN capped at AVX2 (``src.cpu_speed_guard``) while PyTorch's own
oneDNN should run with its defaults, and oneDNN reads the cap once per process; the child also keeps the two
frameworks' OpenMP thread pools apart. The parent hands over the block shapes, the converted weights and an
input with MindSpore's output for it; the child checks it computes the same output, then times.
"""

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mindspore import Tensor, nn

from src.cpu_speed_guard import environment_without_guard
from src.models import RepVGGBlock
from src.models.repvgg import VGGStages
from src.timing import Timing

REPO = Path(__file__).resolve().parents[1]
# Names shared with benchmarks.torch_repvgg, kept as literals so this module does not import torch.
CHECK_INPUT, CHECK_OUTPUT = "check.input", "check.output"


@dataclass(frozen=True)
class TorchTimings:
    seconds: dict[int, Timing]          # batch size -> timing
    torch_version: str
    cpu_capability: str                 # the vector ISA PyTorch dispatched to
    max_relative_difference: float | None = None   # deploy inference only: against MindSpore's output


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def block_shapes(net: VGGStages) -> list[dict]:
    return [{"in_channels": block.in_channels, "out_channels": block.out_channels, "stride": block.stride,
             "groups": block.groups, "use_se": not isinstance(block.se, nn.Identity)}
            for _, block in net.blocks_in_order()]


def torch_deploy_state(deploy_net: VGGStages) -> dict[str, np.ndarray]:
    """Every weight of a converted network under its ``TorchRepVGG`` name (``blocks.<i>.`` + the block's own)."""
    state = {}
    for index, (_, block) in enumerate(deploy_net.blocks_in_order()):
        if not (isinstance(block, RepVGGBlock) and block.deploy):
            raise ValueError("torch_deploy_state needs a converted network (repvgg_model_convert)")
        for name, param in block.parameters_and_names():
            state[f"blocks.{index}.{name}"] = param.asnumpy()
    state["linear.weight"] = deploy_net.linear.weight.asnumpy()
    state["linear.bias"] = deploy_net.linear.bias.asnumpy()
    return state


def run_torch_child(module: str, job: dict, job_file: Path, timeout: float = 3600) -> dict:
    """Run ``python -m module job_file`` (the job written there as JSON) and return the JSON line it prints."""
    job_file.write_text(json.dumps(job))
    completed = subprocess.run([sys.executable, "-m", module, str(job_file)], cwd=REPO,
                               env=environment_without_guard(), capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"the PyTorch benchmark process failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_torch_job(job: dict, folder: Path) -> TorchTimings:
    result = run_torch_child("benchmarks.torch_repvgg", job, folder / f"torch_{job['kind']}.json")
    seconds = {int(batch): Timing(tuple(values)) for batch, values in result["seconds"].items()}
    return TorchTimings(seconds, result["torch"], result["cpu_capability"], result.get("max_relative_difference"))


def torch_deploy_timings(deploy_net: VGGStages, image_size: int, batches: list[int], threads: int, warmup: int,
                         repeats: int, folder: Path) -> TorchTimings:
    """Time the PyTorch eager deploy net holding ``deploy_net``'s weights, after checking it agrees with it."""
    check_input = np.random.default_rng(1).normal(size=(2, 3, image_size, image_size)).astype(np.float32)
    deploy_net.set_train(False)
    arrays = {**torch_deploy_state(deploy_net), CHECK_INPUT: check_input,
              CHECK_OUTPUT: deploy_net(Tensor(check_input)).asnumpy()}
    np.savez(folder / "torch_deploy.npz", **arrays)
    job = {"kind": "deploy_inference", "blocks": block_shapes(deploy_net), "num_classes": deploy_net.num_classes,
           "image_size": image_size, "batches": batches, "threads": threads, "warmup": warmup, "repeats": repeats,
           "arrays": str(folder / "torch_deploy.npz")}
    return run_torch_job(job, folder)


def torch_train_step_timings(net: VGGStages, image_size: int, batch: int, threads: int, warmup: int, steps: int,
                             folder: Path) -> TorchTimings:
    """Time PyTorch training steps of ``net``'s structure (three branches; PyTorch's own initial weights)."""
    job = {"kind": "train_step", "blocks": block_shapes(net), "num_classes": net.num_classes,
           "image_size": image_size, "batches": [batch], "threads": threads, "warmup": warmup, "repeats": steps}
    return run_torch_job(job, folder)

