"""One timed configuration -- what ran, on how many threads, how long it took -- and its CSV row."""

from dataclasses import dataclass

from src.timing import Timing

# A training step costs about three forward passes: the forward, and a backward that computes gradients for
# both the activations and the weights (each as costly as the forward).
TRAIN_STEP_FORWARD_PASSES = 3
# MindSpore's own nn.TrainOneStepCell, the reference the project's train step is measured against.
BARE_TRAIN_STEP = "MindSpore bare TrainOneStepCell O0"


def project_engine(level: str) -> str:
    return f"MindSpore graph {level}"


@dataclass(frozen=True)
class Measurement:
    arch: str
    image_size: int
    engine: str                 # e.g. "ONNX Runtime fp32"
    structure: str              # e.g. "deploy (re-param.)"
    batch: int
    threads: int
    timing: Timing              # seconds per call on a whole batch
    gmacs_per_image: float      # multiply-accumulates of one image through this structure (x3 for training)

    @property
    def images_per_second(self) -> float:
        return self.batch / self.timing.median

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.timing.median

    @property
    def gflops_per_second(self) -> float:
        return 2.0 * self.gmacs_per_image * self.images_per_second

    def row(self, limit_gflops: float | None = None) -> dict:
        fraction = f"{100.0 * self.gflops_per_second / limit_gflops:.1f}" if limit_gflops else ""
        return {"arch": self.arch, "image_size": self.image_size, "engine": self.engine,
                "structure": self.structure, "batch": self.batch, "threads": self.threads,
                "repeats": len(self.timing.seconds), "latency_ms": f"{self.latency_ms:.2f}",
                "p25_ms": f"{1000 * self.timing.quantile(0.25):.2f}",
                "p75_ms": f"{1000 * self.timing.quantile(0.75):.2f}",
                "spread_pct": f"{self.timing.spread_percent:.1f}", "img_per_s": f"{self.images_per_second:.1f}",
                "gmacs_per_image": f"{self.gmacs_per_image:.4f}", "gflop_per_s": f"{self.gflops_per_second:.1f}",
                "pct_of_fp32_limit": fraction}

    def line(self) -> str:
        """One progress line."""
        return (f"{self.arch:16} {self.image_size:4}px {self.engine:34} {self.structure:20} bs {self.batch:3}: "
                f"{self.images_per_second:8.1f} img/s, {self.latency_ms:8.2f} ms "
                f"(IQR {self.timing.spread_percent:4.1f} %)")


def speed_against_bare(measurements: list[Measurement]) -> dict[tuple[str, int], float]:
    """Per (arch, size): the project's O0 throughput as a fraction of the bare step's (1 - it is the share of
    the step that is the project's own)."""
    by_engine = {(m.arch, m.image_size, m.engine): m.timing.median for m in measurements}
    return {(arch, size): seconds / by_engine[(arch, size, project_engine("O0"))]
            for (arch, size, engine), seconds in by_engine.items()
            if engine == BARE_TRAIN_STEP and (arch, size, project_engine("O0")) in by_engine}
