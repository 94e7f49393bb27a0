"""Loaded by every Python process of a launch that tests/system/test_distributed.py starts (its folder is put on
PYTHONPATH), msrun and its workers included. Two recorders, each on when its variable is set:

- REPVGG_AUDIT_TREE / REPVGG_AUDIT_LOG: every file a process creates or changes under the tree is logged to
  REPVGG_AUDIT_LOG/<pid>.txt with the msrun role and rank of the process.
- REPVGG_RANK_TRACE_DIR: each training rank writes rank<r>.npz there when training ends: the class of every
  sample it consumed, its loss at every step and its final network weights. The trainer is wrapped from
  outside when it is imported; it carries no code for this.
"""

import importlib.abc
import importlib.util
import os
import sys

_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_TRAINER = "src.engine.trainer"


def _audit_writes(tree: str, log_folder: str) -> None:
    log = open(os.path.join(log_folder, f"{os.getpid()}.txt"), "a", buffering=1)  # noqa: SIM115 (open for life)
    who = f"{os.environ.get('MS_ROLE', '-')} {os.environ.get('RANK_ID', '-')}"

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITING)
        elif event in ("os.rename", "os.mkdir"):
            path, writes = args[1] if event == "os.rename" else args[0], True
        else:
            return
        if writes and isinstance(path, str) and os.path.abspath(path).startswith(os.path.join(tree, "")):
            log.write(f"{who} {event} {path}\n")

    sys.addaudithook(hook)


def _trace_ranks(module, folder: str) -> None:
    """Record through a TrainStep subclass (the trainer builds its step from the name in its module) and
    write the trace after Trainer.fit."""
    import numpy as np  # only in processes that train

    classes: list = []
    losses: list[float] = []

    class TracedTrainStep(module.TrainStep):
        def __call__(self, images, labels):
            loss, finite = super().__call__(images, labels)
            classes.append(labels.asnumpy().argmax(-1))
            losses.append(float(loss.asnumpy()))
            return loss, finite

    fit = module.Trainer.fit

    def fit_and_write(trainer):
        result = fit(trainer)
        weights = {f"weight:{p.name}": p.asnumpy() for p in trainer.net.get_parameters()}
        np.savez(os.path.join(folder, f"rank{trainer.placement.rank}.npz"), classes=np.concatenate(classes),
                 losses=np.array(losses), **weights)
        return result

    module.TrainStep = TracedTrainStep
    module.Trainer.fit = fit_and_write


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Finds ``name`` with the ordinary finders, then runs ``wrap(module)`` right after the module executes."""

    def __init__(self, name: str, wrap):
        self.name, self.wrap = name, wrap

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        execute = spec.loader.exec_module

        def execute_and_wrap(module):
            execute(module)
            self.wrap(module)

        spec.loader.exec_module = execute_and_wrap
        return spec


if "REPVGG_AUDIT_TREE" in os.environ:
    _audit_writes(os.environ["REPVGG_AUDIT_TREE"], os.environ["REPVGG_AUDIT_LOG"])
if "REPVGG_RANK_TRACE_DIR" in os.environ:
    _trace_folder = os.environ["REPVGG_RANK_TRACE_DIR"]
    sys.meta_path.insert(0, _WrapOnImport(_TRAINER, lambda module: _trace_ranks(module, _trace_folder)))
