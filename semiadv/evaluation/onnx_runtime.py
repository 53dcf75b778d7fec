"""ONNX models run by onnxruntime on the CPU, for the ONNX evaluator plug-ins."""

from __future__ import annotations

from pathlib import Path

ONNX_INSTALL = "pip install 'semiadv[onnx]' (onnxruntime from PyPI)"


def cpu_session(path: str | Path, what: str):
    """An onnxruntime inference session of the model file `path`.

    Args:
      path: the `.onnx` file.
      what: what the model is, for messages (e.g. "ONNX matcher model").

    Raises:
      ImportError: naming `ONNX_INSTALL` if onnxruntime is missing.
      ValueError: naming the file if onnxruntime cannot read it.
    """
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"the {what} {str(path)!r} needs onnxruntime: {ONNX_INSTALL} "
                          f"({error})") from error
    options = onnxruntime.SessionOptions()
    # The cores are shared with TensorFlow: onnxruntime's default of one thread per core each
    # way oversubscribes them; one op-level pool is enough for these small models.
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own, unexported exception types.
        raise ValueError(f"{what} {str(path)!r} cannot be read by onnxruntime: "
                         f"{error}") from error
