"""The one MindSpore set-up of the benchmarks: graph mode on the CPU with a fixed number of kernel threads."""

import mindspore as ms


def use_graph_mode_on_cpu(threads: int) -> None:
    """Graph mode (what deployment and the fast training path use), and ``threads`` CPU kernel threads, so
    MindSpore runs on as many threads as ONNX Runtime and PyTorch (its default is 25, whatever the core count)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(threads)
