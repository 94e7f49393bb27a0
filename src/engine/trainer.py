"""The training loop: data per epoch, the compiled train step, evaluation, checkpoints, logs, resume."""

import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import mindspore.dataset as ds
from mindspore import Tensor, nn
from tqdm import tqdm

from src.atomic_files import check_writable_folder
from src.checkpoint_files import EMA_PREFIX
from src.class_names import CLASSES_FILE, write_classes_file
from src.config import Config, save_config
from src.data import create_dataset, data_folder, dataset_class_names, iterate_checked
from src.data.image_check import images_to_skip
from src.device import Placement, setup_device
from src.engine.amp import apply_amp
from src.engine.distillation import build_distillation
from src.engine.evaluation import evaluate
from src.engine.logbook import Logbook
from src.engine.lr_schedule import build_lr_schedule
from src.engine.networks import build_network, build_training_network, set_qat_ranges, write_searched_scales
from src.engine.optimizer import build_optimizer
from src.engine.run_checkpoints import CheckpointKeeper, RunPosition, restore_train_step, run_checkpoints
from src.engine.sinking import SINKING_DEVICES, StepTally, device_sink, steps_per_sink
from src.engine.stop_request import StopRequest
from src.engine.sync_batchnorm import convert_to_sync_batchnorm
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.errors import UserError
from src.logger import get_logger
from src.metrics import EvalResult

RESUME_LATEST = "auto"


class DivergenceError(UserError):
    """Too many consecutive non-finite steps: the run stops before it can save anything broken."""


@dataclass
class FitResult:
    position: RunPosition
    last_eval: EvalResult | None
    checkpoint: Path | None
    network: nn.Cell
    exit_code: int = 0              # 128 + signal number after a clean stop on SIGINT/SIGTERM


@dataclass
class EpochOutcome:
    mean_loss: float
    images_per_second: float
    skipped_steps: int
    stopped: bool                   # a stop was requested: the epoch ended early


def _train_dataset(cfg: Config, epoch: int, placement: Placement, skipped: frozenset[str] = frozenset()) -> ds.Dataset:
    # A fresh pipeline per epoch, seeded by the epoch: a resumed run sees exactly the data it would have.
    ds.config.set_seed(cfg.seed + epoch)
    return create_dataset(cfg, "train", training=True, rank_id=placement.rank, rank_size=placement.group_size,
                          skipped=skipped)


def _loss_scaler(cfg: Config):
    if cfg.amp_level == "O0":
        # float32 throughout: nothing underflows that scaling would save, and the step skips a scale of 1.
        return make_loss_scaler(False, 1.0)
    dynamic = cfg.is_dynamic_loss_scale
    if dynamic and cfg.device_target == "CPU":
        get_logger().info(f"dynamic loss scaling is refused by MindSpore's CPU backend: using the fixed "
                          f"loss scale {cfg.loss_scale:g}")
        dynamic = False
    return make_loss_scaler(dynamic, cfg.loss_scale)


def _copy_weights(sources: list, target: nn.Cell, prefix: str = "") -> None:
    params = {p.name: p for p in target.get_parameters()}
    for source in sources:
        params[source.name.removeprefix(prefix)].set_data(source.data.copy())


class Trainer:
    def __init__(self, cfg: Config, placement: Placement, skipped_images: frozenset[str] = frozenset()):
        self.cfg = cfg
        self.placement = placement
        self.skipped_images = skipped_images
        self.log = get_logger()
        ms.set_seed(cfg.seed)
        self.net, grad_mults = build_training_network(cfg)
        if cfg.sync_bn:
            self._use_sync_batchnorm()
        self.steps_per_epoch = _train_dataset(cfg, 0, placement, skipped_images).get_dataset_size()
        if self.steps_per_epoch == 0:
            raise UserError(f"the training set at {cfg.data_url} has fewer images per device than one batch "
                            f"({cfg.batch_size}): lower batch_size")
        self.lr = build_lr_schedule(cfg, self.steps_per_epoch)
        optimizer = build_optimizer(cfg, self.net.trainable_params(), self.lr, grad_mults)
        grad_reducer = None
        if placement.distributed:
            grad_reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=placement.group_size)
        student = apply_amp(self.net, cfg.amp_level)
        if cfg.kd_alpha > 0:
            net_with_loss = build_distillation(cfg, student)
        else:
            net_with_loss = NetWithLoss(student, SoftTargetCrossEntropy())
        self.train_step = TrainStep(
            net_with_loss, optimizer, _loss_scaler(cfg), cfg.clip_global_norm_value,
            ema_source=self.net.get_parameters() if cfg.with_ema else None, ema_decay=cfg.ema_decay,
            grad_reducer=grad_reducer)
        # AMP changes the trained Cells in place (casts to float16); evaluation, conversion and export use
        # this float32 twin, into which the current (or EMA) weights are copied.
        self.eval_net = build_network(cfg)
        self.class_names = dataset_class_names(cfg)
        self.keeper = CheckpointKeeper(cfg.train_url, self.net.arch, cfg.keep_checkpoint_max, self.class_names)
        self.logbook = Logbook(cfg.train_url, f"{self.net.arch} on {cfg.set}")
        self.position = RunPosition()
        self.stop = StopRequest(placement.distributed)
        self.nonfinite_streak = 0
        self.sinks = cfg.dataset_sink_mode and cfg.device_target in SINKING_DEVICES
        if cfg.dataset_sink_mode and not self.sinks:
            self.log.info(f"dataset_sink_mode: MindSpore cannot sink data on {cfg.device_target}; training step by "
                          "step")
        self.tally = StepTally(self.train_step) if self.sinks else None

    def _use_sync_batchnorm(self) -> None:
        if self.cfg.device_target != "Ascend":
            raise UserError(f"sync_bn: MindSpore's SyncBatchNorm runs on Ascend only, not on {self.cfg.device_target}; "
                            "set sync_bn to false")
        if not self.placement.distributed:
            self.log.info("sync_bn ignored: a single device has nothing to synchronise")
            return
        count = convert_to_sync_batchnorm(self.net)
        self.log.info(f"sync_bn: {count} BatchNorm layers synchronised across {self.placement.group_size} devices")

    def resume(self, checkpoint: str) -> None:
        path = self.keeper.latest() if checkpoint == RESUME_LATEST else Path(checkpoint)
        if path is None:
            # A scheduler restarts the same command line after a preemption, possibly before the first
            # checkpoint was written: there is nothing to continue, so the run starts from the beginning.
            self.log.info(f"--resume: no checkpoint in {self.cfg.train_url} yet, starting a new run")
            return
        self.position = restore_train_step(self.train_step, path)
        if not 0 <= self._steps_into_epoch() < self.steps_per_epoch:
            raise UserError(f"cannot resume from {path}: it was written with {self.position.step} steps after "
                            f"{self.position.epoch} epochs, but this setup has {self.steps_per_epoch} steps "
                            "per epoch (batch_size or data changed)")
        within = f", {self._steps_into_epoch()} steps into the next" if self._steps_into_epoch() else ""
        self.log.info(f"resumed from {path} after epoch {self.position.epoch}{within} (step {self.position.step})")

    def _steps_into_epoch(self) -> int:
        return self.position.step - self.position.epoch * self.steps_per_epoch

    def evaluation_network(self) -> nn.Cell:
        """The float32 network with the weights to evaluate: the EMA ones when EMA is on."""
        if self.cfg.with_ema:
            _copy_weights(list(self.train_step.ema), self.eval_net, prefix=EMA_PREFIX)
        else:
            _copy_weights(list(self.net.get_parameters()), self.eval_net)
        return self.eval_net

    def validate(self) -> EvalResult:
        cfg = self.cfg
        dataset = create_dataset(cfg, "val", training=False, skipped=self.skipped_images)
        return evaluate(self.evaluation_network(), iterate_checked(dataset, data_folder(cfg, "val")))

    def _check_divergence(self, longest_streak: int) -> None:
        if longest_streak >= self.cfg.max_nonfinite_steps:
            last = self.keeper.latest()
            raise DivergenceError(
                f"training diverged: {longest_streak} steps in a row had a non-finite loss or gradients "
                f"(up to step {self.position.step}, learning rate {self.lr[self.position.step - 1]:.3g}); "
                f"nothing was saved from them. Last good checkpoint: {last or 'none'}. Lower base_lr, keep "
                "clip_global_norm_value on, or raise max_nonfinite_steps if the loss scale is still settling")

    def _count_nonfinite(self, finite: bool) -> None:
        self.nonfinite_streak = 0 if finite else self.nonfinite_streak + 1
        self._check_divergence(self.nonfinite_streak)

    def _train_one_epoch(self, epoch: int) -> EpochOutcome:
        cfg = self.cfg
        set_qat_ranges(cfg, self.net, epoch)
        self.train_step.set_train(True)
        done_before = self._steps_into_epoch()
        start = time.perf_counter()
        progress = tqdm(total=self.steps_per_epoch, initial=done_before, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                        disable=not self.placement.is_main, leave=False, mininterval=2.0, unit="step")
        train = self._train_sunk if self.sinks else self._train_step_by_step
        loss_sum, finite_steps, skipped, stopped = train(epoch, done_before, progress)
        progress.close()
        seconds = time.perf_counter() - start
        trained_steps = self._steps_into_epoch() - done_before if stopped else self.steps_per_epoch - done_before
        images_per_second = trained_steps * cfg.batch_size * self.placement.group_size / seconds
        mean_loss = loss_sum / finite_steps if finite_steps else math.nan
        return EpochOutcome(mean_loss, images_per_second, skipped, stopped)

    def _train_step_by_step(self, epoch: int, done_before: int, progress: tqdm) -> tuple[float, int, int, bool]:
        """(finite loss sum, finite steps, skipped steps, stopped) of the epoch's remaining steps."""
        cfg = self.cfg
        dataset = _train_dataset(cfg, epoch, self.placement, self.skipped_images)
        loss_sum, finite_steps, skipped, last_loss = 0.0, 0, 0, math.nan
        # After a mid-epoch stop, the batches already trained on are drawn again (the same ones: the pipeline
        # is seeded by the epoch) and passed over, so the run continues exactly where it stopped.
        for index, (images, labels) in enumerate(iterate_checked(dataset, data_folder(cfg, "train"))):
            if index < done_before:
                continue
            # from_numpy shares the batch's memory instead of copying it.
            loss, finite = self.train_step(Tensor.from_numpy(images), Tensor.from_numpy(labels))
            self.position.step += 1
            finite = bool(finite.asnumpy())
            if finite:
                last_loss = float(loss.asnumpy())
                loss_sum += last_loss
                finite_steps += 1
            else:
                skipped += 1
            progress.update()
            progress.set_postfix(loss=f"{last_loss:.4f}", lr=f"{self.lr[self.position.step - 1]:.2e}", refresh=False)
            self._count_nonfinite(finite)
            if index + 1 < self.steps_per_epoch and self.stop.requested():
                return loss_sum, finite_steps, skipped, True
        return loss_sum, finite_steps, skipped, False

    def _train_sunk(self, epoch: int, done_before: int, progress: tqdm) -> tuple[float, int, int, bool]:
        """As ``_train_step_by_step``, in sinks of ``sink_size`` steps; a resumed epoch whose remaining steps
        are not a whole number of sinks first runs the odd ones step by step, so sinks end where the epoch
        does. Logs, the divergence check and a stop act at sink boundaries."""
        cfg = self.cfg
        sink = steps_per_sink(cfg.sink_size, self.steps_per_epoch)
        remaining = self.steps_per_epoch - done_before
        lead = remaining % sink
        loss_sum, finite_steps, skipped = 0.0, 0, 0

        def account(steps: int) -> None:
            nonlocal loss_sum, finite_steps, skipped
            tally = self.tally.read()
            self.position.step += steps
            loss_sum += tally.finite_loss_sum
            finite_steps += tally.finite_steps
            skipped += tally.skipped_steps
            progress.update(steps)
            self._check_divergence(tally.longest_streak)

        if lead:
            dataset = _train_dataset(cfg, epoch, self.placement, self.skipped_images).skip(done_before).take(lead)
            for images, labels in iterate_checked(dataset, data_folder(cfg, "train")):
                self.tally(Tensor.from_numpy(images), Tensor.from_numpy(labels))
            account(lead)
        dataset = _train_dataset(cfg, epoch, self.placement, self.skipped_images).skip(done_before + lead)
        run_sink = device_sink(self.tally, dataset, sink)
        for _ in range(remaining // sink):
            run_sink()
            account(sink)
            if self._steps_into_epoch() < self.steps_per_epoch and self.stop.requested():
                return loss_sum, finite_steps, skipped, True
        return loss_sum, finite_steps, skipped, False

    def _write_searched_scales(self) -> None:
        """A RepOpt search keeps its scales file in step with its newest checkpoint (rank 0 calls this)."""
        if self.cfg.repopt_search:
            write_searched_scales(self.cfg, self.evaluation_network())

    def _stopped(self, checkpoint: Path | None, last_eval: EvalResult | None) -> FitResult:
        """End the run on a stop request; a cut-short epoch gets its resumable checkpoint written here."""
        if checkpoint is None and self.placement.is_main:
            checkpoint = self.keeper.save_interrupted(self.train_step, self.position)
            self._write_searched_scales()
        name = signal.Signals(self.stop.signal_number).name
        self.log.info(f"stopped by {name} at step {self.position.step} ({self.position.epoch} epochs done); "
                      f"resumable checkpoint: {checkpoint or 'written by rank 0'}; continue with --resume")
        return FitResult(self.position, last_eval, checkpoint, self.evaluation_network(), self.stop.exit_code)

    def fit(self) -> FitResult:
        with self.stop:
            return self._fit()

    def _fit(self) -> FitResult:
        cfg = self.cfg
        if self.placement.is_main:
            save_config(cfg, Path(cfg.train_url) / "config.yaml")
            write_classes_file(Path(cfg.train_url) / CLASSES_FILE, self.class_names)
            removed = self.keeper.remove_staging_files()
            if removed:
                self.log.info(f"removed {removed} unfinished checkpoint file(s) of an interrupted earlier write")
        last_eval, checkpoint, resumed_at = None, None, self.position.epoch
        run_start, first_epoch = time.perf_counter(), self.position.epoch
        for epoch in range(self.position.epoch, cfg.epochs):
            epoch_start = time.perf_counter()
            outcome = self._train_one_epoch(epoch)
            if outcome.stopped:
                return self._stopped(None, None)
            self.position.epoch = epoch + 1
            last_epoch = epoch + 1 == cfg.epochs
            evaluate_now = last_epoch or (cfg.eval_every > 0 and (epoch + 1) % cfg.eval_every == 0)
            last_eval = self.validate() if evaluate_now else None
            is_best = last_eval is not None and last_eval.top1 > self.position.best_top1
            if is_best:
                self.position.best_top1 = last_eval.top1
            epoch_seconds = time.perf_counter() - epoch_start
            lr_now = float(self.lr[self.position.step - 1])
            if self.placement.is_main:
                checkpoint = self.keeper.save(self.train_step, self.position, is_best)
                self._write_searched_scales()
                self.logbook.append({
                    "epoch": epoch + 1, "train_loss": f"{outcome.mean_loss:.5f}", "lr": f"{lr_now:.6g}",
                    "val_loss": f"{last_eval.loss:.5f}" if last_eval else "",
                    "top1": f"{last_eval.top1:.3f}" if last_eval else "",
                    "top5": f"{last_eval.top5:.3f}" if last_eval else "",
                    "img_per_s": f"{outcome.images_per_second:.1f}", "epoch_seconds": f"{epoch_seconds:.1f}",
                }, resume_from_epoch=resumed_at)
                resumed_at = None
                done = epoch + 1 - first_epoch
                eta = (time.perf_counter() - run_start) / done * (cfg.epochs - epoch - 1)
                accuracy = f", val top-1 {last_eval.top1:.2f}% top-5 {last_eval.top5:.2f}%" if last_eval else ""
                skipped = outcome.skipped_steps
                overflow = f", {skipped} step(s) skipped (non-finite)" if skipped else ""
                self.log.info(f"epoch {epoch + 1}/{cfg.epochs}: loss {outcome.mean_loss:.4f}{accuracy}, "
                              f"lr {lr_now:.3g}, {outcome.images_per_second:.0f} img/s{overflow}, "
                              f"ETA {_duration(eta)}")
            if not last_epoch and self.stop.requested():
                return self._stopped(checkpoint, last_eval)
        return FitResult(self.position, last_eval, checkpoint, self.evaluation_network())


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def train(cfg: Config, resume: str | None = None) -> FitResult:
    if not resume:
        earlier = run_checkpoints(cfg.train_url)
        if earlier:
            raise UserError(f"train_url {cfg.train_url} already holds a run ({earlier[-1].name}); a new run would "
                            "overwrite its checkpoints: continue it with --resume, or give another train_url")
    skipped_images = images_to_skip(cfg)
    # Created only now, so that a run refused for its data leaves no folder behind.
    check_writable_folder(cfg.train_url)
    placement = setup_device(cfg)
    trainer = Trainer(cfg, placement, skipped_images)
    if resume:
        trainer.resume(resume)
    result = trainer.fit()
    if placement.distributed and result.exit_code == 0:
        # Only rank 0 reports epochs; this line tells each worker's log that its rank got to the end.
        get_logger().info(f"rank {placement.rank} of {placement.group_size} finished training")
    elif placement.distributed:
        # msrun takes any non-zero exit for a crash and kills the other ranks before they finish; the launch
        # script reports the stop and its signal instead (scripts/common.sh).
        result.exit_code = 0
    return result
