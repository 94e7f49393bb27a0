"""The PyTorch reference run of ``benchmarks.training_parity``: the same RepVGG trained with the same recipe.

Independent of the project's training code: PyTorch's own SGD (Nesterov), ``CrossEntropyLoss`` with label
smoothing, ``clip_grad_norm_``, PyTorch's default initialisation, a fresh global shuffle every epoch and the
torchvision transforms of ``benchmarks.torchvision_transforms``. Runs in a child process (see
``benchmarks.torch_jobs``) and prints one JSON line: top-1 and validation loss after every epoch.

    python -m benchmarks.torch_training JOB.json
"""

import json
import math
import random
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

from benchmarks import torchvision_transforms as tvt
from benchmarks.torch_repvgg import BlockShape, TorchRepVGG

SMALL_IMAGE_SIZE = 32


def learning_rates(recipe: dict, steps_per_epoch: int) -> list[float]:
    """Linear warm-up from warmup_lr (PyTorch's LinearLR), then cosine to min_lr (CosineAnnealingLR), per step."""
    total = recipe["epochs"] * steps_per_epoch
    warmup = min(recipe["warmup_length"] * steps_per_epoch, total)
    base, start, low = recipe["base_lr"], recipe["warmup_lr"], recipe["min_lr"]
    rates = []
    for step in range(total):
        if step < warmup:
            rates.append(start + (base - start) * step / warmup)
        else:
            progress = (step - warmup) / max(total - warmup, 1)
            rates.append(low + 0.5 * (base - low) * (1 + math.cos(math.pi * progress)))
    return rates


class Transforms:
    def __init__(self, recipe: dict, rng: random.Random):
        self.recipe = recipe
        self.rng = rng
        self.size = recipe["image_size"]
        self.small = recipe["small_image_recipe"]

    def _normalize(self, image) -> np.ndarray:
        return tvt.normalize_chw(image, self.recipe["mean"], self.recipe["std"])

    def train(self, image: Image.Image) -> np.ndarray:
        if self.small:
            image = Image.fromarray(tvt.random_crop_padded(np.asarray(image), SMALL_IMAGE_SIZE, 4, self.rng))
            if self.size != SMALL_IMAGE_SIZE:
                image = image.resize((self.size, self.size), tvt.RESAMPLING[self.recipe["interpolation"]])
        else:
            image = tvt.random_resized_crop(image, self.size, self.rng, self.recipe["interpolation"])
        if self.rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return self._normalize(image)

    def eval(self, image: Image.Image) -> np.ndarray:
        if self.small:
            if self.size != SMALL_IMAGE_SIZE:
                image = image.resize((self.size, self.size), tvt.RESAMPLING[self.recipe["interpolation"]])
        else:
            resized = tvt.resize_shorter_side(image, int(self.size / self.recipe["crop_pct"]),
                                              self.recipe["interpolation"])
            image = tvt.center_crop(resized, self.size)
        return self._normalize(image)


def load_images(samples: list[list]) -> list[tuple[Image.Image, int]]:
    loaded = []
    for path, label in samples:
        with Image.open(path) as image:
            loaded.append((image.convert("RGB"), label))
    return loaded


def evaluate(net: nn.Module, images: list[tuple[Image.Image, int]], transforms: Transforms) -> tuple[float, float]:
    """(top-1 %, mean cross entropy against the hard labels)."""
    net.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(images), 100):
            chunk = images[start:start + 100]
            x = torch.from_numpy(np.stack([transforms.eval(image) for image, _ in chunk]))
            labels = torch.tensor([label for _, label in chunk])
            logits = net(x)
            loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
    net.train()
    return 100.0 * correct / len(images), loss_sum / len(images)


def run_job(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    recipe, seed = job["recipe"], job["seed"]
    torch.manual_seed(seed)
    rng = random.Random(seed)
    transforms = Transforms(recipe, rng)
    train_images, val_images = load_images(job["train"]), load_images(job["val"])
    net = TorchRepVGG([BlockShape(**shape) for shape in job["blocks"]], job["num_classes"], deploy=False).train()
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]     # BatchNorm and biases
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": recipe["weight_decay"]},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=recipe["base_lr"],
                                momentum=recipe["momentum"], nesterov=recipe["nesterov"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe["label_smoothing"])
    batch = recipe["batch_size"]
    steps_per_epoch = len(train_images) // batch
    rates = learning_rates(recipe, steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    history, step, start = [], 0, time.perf_counter()
    for _ in range(recipe["epochs"]):
        order = torch.randperm(len(train_images), generator=generator).tolist()
        for index in range(steps_per_epoch):
            chosen = [train_images[i] for i in order[index * batch:(index + 1) * batch]]
            x = torch.from_numpy(np.stack([transforms.train(image) for image, _ in chosen]))
            labels = torch.tensor([label for _, label in chosen])
            for group in optimizer.param_groups:
                group["lr"] = rates[step]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(x), labels).backward()
            if recipe["clip_global_norm_value"] > 0:
                nn.utils.clip_grad_norm_(net.parameters(), recipe["clip_global_norm_value"])
            optimizer.step()
            step += 1
        top1, val_loss = evaluate(net, val_images, transforms)
        history.append({"top1": top1, "val_loss": val_loss})
    return {"history": history, "seconds": time.perf_counter() - start, "torch": torch.__version__}


def main(argv: list[str]) -> None:
    with open(argv[0]) as handle:
        job = json.load(handle)
    print(json.dumps(run_job(job)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
