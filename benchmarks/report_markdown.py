"""The Markdown of the benchmark report, written so that its sections can be pasted under README's "Benchmarks".

Headings start at level 3; pictures are linked relative to the report's folder.
"""

from dataclasses import dataclass

from benchmarks.fp32_limit import Fp32Limit
from benchmarks.int8_accuracy import FEW_LEVELS, INT8_LEVELS, Int8Accuracy
from benchmarks.measurement import Measurement, speed_against_bare
from benchmarks.targets import TargetCheck


@dataclass(frozen=True)
class ReportInputs:
    machine: dict[str, str]
    limit: Fp32Limit
    complexity: list[dict]
    inference: list[Measurement]
    agreement: dict[str, dict[str, float]]     # arch -> engine -> max relative difference from MindSpore
    warmup: int
    training: list[Measurement]
    int8: Int8Accuracy | None


def table(header: list[str], rows: list[list[str]], right_from: int = 1) -> str:
    """A Markdown table; columns from ``right_from`` on are right-aligned (numbers)."""
    rule = ["---" if index < right_from else "---:" for index in range(len(header))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *rows])


def machine_section(inputs: ReportInputs) -> str:
    machine, limit = inputs.machine, inputs.limit
    versions = ", ".join(f"{key.removeprefix('version_')} {value}" for key, value in machine.items()
                         if key.startswith("version_"))
    gemms = ", ".join(f"{backend} {rate:.1f}" for backend, rate in limit.gemm_gflops.items())
    peak = f"{limit.theoretical_gflops:.1f} GFLOP/s ({limit.theoretical_basis})" if limit.theoretical_gflops \
        else f"unknown ({limit.theoretical_basis})"
    return "\n".join([
        "### Machine and FP32 limit", "",
        f"- CPU: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, vector ISA {machine['isa']}; "
        f"load average (1 min) when the run started: {machine['load_average_1min_at_start']}",
        f"- threads: {machine['threads']} for every engine; MindSpore's oneDNN capped at "
        f"`ONEDNN_MAX_CPU_ISA={machine['onednn_isa_mindspore']}` (see 'CPU speed guard' in the README), "
        "PyTorch with its own defaults",
        f"- versions: {versions}",
        f"- FP32 limit (best large SGEMM before and after the run, GFLOP/s): {gemms} -> **{limit.gflops:.1f} "
        f"GFLOP/s**, the reference for every \"% of FP32 limit\" below (an fp32 share above 100 % means the machine "
        f"was busier while the limit was measured); theoretical peak {peak}",
        "- GFLOP/s = 2 x multiply-accumulates x images/s; a training step counts as 3 forward passes",
    ])


def complexity_section(inputs: ReportInputs) -> str:
    rows = [[row["arch"], str(row["image_size"]), row["params_train_m"], row["params_deploy_m"], row["gmacs_train"],
             row["gmacs_deploy"], row["published_gmacs"] or "-"] for row in inputs.complexity]
    return "\n".join([
        "### Parameters and multiply-accumulates", "",
        table(["arch", "input", "params train (M)", "params deploy (M)", "GMACs train", "GMACs deploy",
               "published GMACs train / deploy"], rows),
        "",
        "Counted analytically from the Cells (`benchmarks/flops.py`): convolutions (with groups) and the classifier; "
        "BatchNorm, biases, ReLU, branch sums and the global mean are left out, as in the paper's FLOPs column. "
        "Published: OpenMMLab mmpretrain's RepVGG table (the paper, Ding et al. CVPR 2021 Table 4, rounds the "
        "deploy numbers: A0 1.4, B0 3.1).",
    ])


def _latency_cell(measurement: Measurement) -> str:
    return f"{measurement.latency_ms:.1f} (IQR {measurement.timing.spread_percent:.0f} %)"


def inference_section(inputs: ReportInputs, arch: str, chart: str) -> str:
    measurements = [m for m in inputs.inference if m.arch == arch]
    first = measurements[0]
    batches = sorted({m.batch for m in measurements})
    keys = list(dict.fromkeys((m.engine, m.structure) for m in measurements))
    found = {(m.engine, m.structure, m.batch): m for m in measurements}
    header = ["engine", "structure"]
    for batch in batches:
        header += [f"img/s bs {batch}", f"ms/batch bs {batch}", f"% FP32 limit bs {batch}"]
    rows = []
    for engine, structure in keys:
        cells = [engine, structure]
        for batch in batches:
            m = found.get((engine, structure, batch))
            cells += [f"{m.images_per_second:.1f}", _latency_cell(m),
                      f"{100 * m.gflops_per_second / inputs.limit.gflops:.0f}"] if m else ["-", "-", "-"]
        rows.append(cells)
    agreement = "; ".join(f"{engine} {difference:.1e}" for engine, difference in inputs.agreement[arch].items())
    repeats = len(first.timing.seconds)
    return "\n".join([
        f"### Inference, {arch} at {first.image_size}x{first.image_size} (random weights)", "",
        table(header, rows, right_from=2),
        "",
        f"Median of {repeats} timed runs after {inputs.warmup} warm-up runs; ms/batch is the median latency of one "
        "call on the whole batch, IQR the interquartile range relative to it. int8 rows divide int8 "
        "multiply-accumulates by the FP32 limit, so they can pass 100 %. Deploy outputs against MindSpore's on the "
        f"same weights (max difference / max |output|): {agreement}.",
        "",
        f"![{arch} inference]({chart})",
    ])


def training_section(inputs: ReportInputs, chart: str) -> str:
    rows = [[m.arch, f"{m.image_size}", m.engine, f"{m.images_per_second:.1f}", _latency_cell(m),
             f"{m.gflops_per_second:.1f}", f"{100 * m.gflops_per_second / inputs.limit.gflops:.0f}"]
            for m in inputs.training]
    first = inputs.training[0]
    against_bare = [f"{arch} {size} px: {ratio:.3f}x ({100 * (1 - ratio):.1f} % of the step is the project's own)"
                    for (arch, size), ratio in speed_against_bare(inputs.training).items()]
    return "\n".join([
        f"### Training step, batch {first.batch} (random data)", "",
        table(["arch", "input", "engine", "img/s", "ms/step", "GFLOP/s", "% FP32 limit"], rows, right_from=3),
        "",
        "The whole step: forward, soft-target cross entropy, backward, global-norm clipping, momentum SGD. "
        "MindSpore O1 computes in float16, which CPUs have no fast convolution for; PyTorch runs the same "
        "three-branch network in fp32 eager mode. The bare TrainOneStepCell is MindSpore's own step on the same "
        "network and optimiser, without the finite check, BatchNorm backup and clipping, timed in turn with the "
        "project's step; the project's O0 step against it: " + ("; ".join(against_bare) or "not measured") + ".",
        "",
        f"![training]({chart})",
    ])


def int8_section(int8: Int8Accuracy, chart: str) -> str:
    rows = [[row["model"], row["weight_scales"], row["top1"], row["top5"], row["top1_drop"]] for row in int8.rows]
    layer, layer_levels = int8.narrowest_layer
    return "\n".join([
        "### int8 accuracy: per-channel against per-tensor weight scales", "",
        f"{int8.network}; {int8.rows[0]['images']} held-out images, calibration on "
        f"{int8.rows[1]['calibration_images']} training images (static QDQ, MinMax, uint8 activations, int8 weights).",
        "",
        table(["model", "weight scales", "top-1 (%)", "top-5 (%)", "top-1 drop (points)"], rows, right_from=2),
        "",
        "What keeps the drop small: one weight scale per output channel. Re-parameterisation folds every "
        "BatchNorm's gamma / sigma into its output channel of the fused 3x3 kernel, so the channels' ranges differ "
        f"widely: with one scale per tensor the median channel of the fused kernels spans {int8.median_levels:.0f} "
        f"of the {INT8_LEVELS} int8 levels, {int8.few_levels_percent:.0f} % of channels fewer than {FEW_LEVELS}, and "
        f"in the narrowest layer ({layer}) the median channel {layer_levels:.0f}. Per-channel scales give every "
        "channel all of them.",
        "",
        f"![int8 accuracy]({chart})",
    ])


def targets_section(targets: list[TargetCheck]) -> str:
    verdicts = {True: "yes", False: "**no**", None: "n/a"}
    rows = [[check.target, check.required, check.measured, verdicts[check.met]] for check in targets]
    return "\n".join(["### Targets", "", table(["target", "required", "measured", "met"], rows, right_from=4),
                      "", "Measured on the machine above; other machines will differ."])


def render_report(inputs: ReportInputs, targets: list[TargetCheck], charts: dict[str, str]) -> str:
    """``charts``: picture file name per architecture, and for "training" and "int8"."""
    sections = [machine_section(inputs), complexity_section(inputs)]
    sections += [inference_section(inputs, arch, charts[arch]) for arch in inputs.agreement]
    if inputs.training:
        sections.append(training_section(inputs, charts["training"]))
    if inputs.int8:
        sections.append(int8_section(inputs.int8, charts["int8"]))
    sections.append(targets_section(targets))
    return "## Benchmark report\n\nWritten by `python -m benchmarks.report`.\n\n" + "\n\n".join(sections) + "\n"
