"""Deployment: exporting the deploy network, and offline inference outside MindSpore's Python API (the
Ascend 310 flow of the MindSpore ModelZoo RepVGG and its CPU twin on MindSpore Lite).

- ``export``: a checkpoint's network -> MINDIR, AIR or ONNX (export.py).
- ``binfiles``: the file formats shared by preprocess.py, the C++ harness in ``ascend310_infer/`` and
  postprocess.py (input ``.bin`` tensors, the label file, per-input result files).
- ``offline_eval``: an image folder -> input ``.bin`` files and the label file (preprocess.py).
- ``result_scoring``: result files -> top-1/top-5 (postprocess.py), NumPy only: scoring needs no MindSpore.
- ``onnx_runtime``: evaluating an ONNX model with ONNX Runtime (infer_onnx.py); ``quantize``: int8 QDQ.
- ``predict``: the top-k classes of image files by a checkpoint, an ONNX or a MINDIR model (predict.py);
  ``model_info``: the class names and preprocessing an exported model carries, read without MindSpore.
- ``lite``: the MindSpore Lite package (a Python 3.7 virtual environment) that lets the harness build and
  run on CPU, and its ONNX -> MINDIR converter.

Networks come from ``src.models.from_checkpoint``, accuracy from ``src.metrics``: nothing here needs the
training engine.
"""
