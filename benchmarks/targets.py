"""The speed and accuracy targets of the benchmark report, checked against what was measured (never assumed).

- Re-parameterisation speeds MindSpore graph mode up >= 1.3x for RepVGG-A0 at 224x224, batch 8.
- ONNX Runtime fp32 runs the deploy net >= 1.15x faster than PyTorch eager on the same weights, and at >= 85 % of
  the machine's FP32 limit.
- The fastest deploy path (int8 per-channel included) runs >= 3x faster than PyTorch fp32 eager on AVX-512 VNNI CPUs.
- int8 (the deployed per-channel model) loses <= 0.5 points of top-1.
"""

from dataclasses import dataclass

from benchmarks.inference_speed import DEPLOY, MINDSPORE, ORT_FP32, ORT_INT8, TORCH, TRAIN
from benchmarks.measurement import Measurement

REPARAM_ARCH, REPARAM_SIZE, REPARAM_BATCH, REPARAM_SPEEDUP = "RepVGG-A0", 224, 8, 1.3
ORT_OVER_TORCH = 1.15
ORT_LIMIT_PERCENT = 85.0
FASTEST_OVER_TORCH = 3.0
INT8_MAX_DROP = 0.5
# Not candidates for "the fastest deploy path": the baseline itself, and per-tensor int8, which RepVGG cannot
# deploy for its accuracy (benchmarks.int8_accuracy measures the loss).
NOT_DEPLOYABLE = (TORCH, ORT_INT8["per-tensor"])


@dataclass(frozen=True)
class TargetCheck:
    target: str
    required: str
    measured: str
    met: bool | None        # None: not measured here, or the target does not apply to this machine


def _find(measurements: list[Measurement], engine: str, structure: str, arch: str, size: int,
          batch: int) -> Measurement | None:
    return next((m for m in measurements if (m.engine, m.structure, m.arch, m.image_size, m.batch)
                 == (engine, structure, arch, size, batch)), None)


def reparam_speedup(measurements: list[Measurement]) -> TargetCheck:
    target = f"re-param. speed-up, MindSpore graph, {REPARAM_ARCH} {REPARAM_SIZE}px bs {REPARAM_BATCH}"
    required = f">= {REPARAM_SPEEDUP:.2f}x"
    train = _find(measurements, MINDSPORE, TRAIN, REPARAM_ARCH, REPARAM_SIZE, REPARAM_BATCH)
    deploy = _find(measurements, MINDSPORE, DEPLOY, REPARAM_ARCH, REPARAM_SIZE, REPARAM_BATCH)
    if train is None or deploy is None:
        return TargetCheck(target, required, f"not measured (needs --batches {REPARAM_BATCH})", None)
    ratio = deploy.images_per_second / train.images_per_second
    return TargetCheck(target, required, f"{ratio:.2f}x", ratio >= REPARAM_SPEEDUP)


def deploy_checks(measurements: list[Measurement], limit_gflops: float, vnni: bool) -> list[TargetCheck]:
    """For every (arch, size, batch) where PyTorch eager ran: ONNX Runtime fp32 against it and against the FP32
    limit, and the fastest deploy path against it."""
    checks = []
    for torch_row in (m for m in measurements if m.engine == TORCH):
        where = f"{torch_row.arch} {torch_row.image_size}px bs {torch_row.batch}"
        ort = _find(measurements, ORT_FP32, DEPLOY, torch_row.arch, torch_row.image_size, torch_row.batch)
        torch_rate = torch_row.images_per_second
        if ort is not None:
            ratio = ort.images_per_second / torch_rate
            checks.append(TargetCheck(f"ONNX Runtime fp32 / PyTorch eager, {where}", f">= {ORT_OVER_TORCH:.2f}x",
                                      f"{ratio:.2f}x", ratio >= ORT_OVER_TORCH))
            percent = 100.0 * ort.gflops_per_second / limit_gflops
            checks.append(TargetCheck(f"ONNX Runtime fp32 share of the FP32 limit, {where}",
                                      f">= {ORT_LIMIT_PERCENT:.0f} %", f"{percent:.0f} %",
                                      percent >= ORT_LIMIT_PERCENT))
        deploy_rows = [m for m in measurements if m.structure == DEPLOY and m.engine not in NOT_DEPLOYABLE
                       and (m.arch, m.image_size, m.batch) == (torch_row.arch, torch_row.image_size, torch_row.batch)]
        if deploy_rows:
            fastest = max(deploy_rows, key=lambda m: m.images_per_second)
            ratio = fastest.images_per_second / torch_rate
            note = "" if vnni else " (no VNNI here: target not applicable)"
            checks.append(TargetCheck(f"fastest deploy path ({fastest.engine}) / PyTorch fp32 eager, {where}",
                                      f">= {FASTEST_OVER_TORCH:.1f}x on AVX-512 VNNI", f"{ratio:.2f}x{note}",
                                      ratio >= FASTEST_OVER_TORCH if vnni else None))
    return checks


def int8_drop(top1_drop: float | None) -> TargetCheck:
    target, required = "int8 (QDQ, per-channel) top-1 drop on the demo set", f"<= {INT8_MAX_DROP} points"
    if top1_drop is None:
        return TargetCheck(target, required, "not measured", None)
    return TargetCheck(target, required, f"{top1_drop:.2f} points", top1_drop <= INT8_MAX_DROP)


def check_targets(measurements: list[Measurement], limit_gflops: float, vnni: bool,
                  per_channel_top1_drop: float | None) -> list[TargetCheck]:
    return [reparam_speedup(measurements), *deploy_checks(measurements, limit_gflops, vnni),
            int8_drop(per_channel_top1_drop)]
