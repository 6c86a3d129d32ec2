"""Text encoders: the TextEncoder protocol, backends (PyTorch, ONNX Runtime), the e5-small converter,
the model registry and re-embedding after a model switch.

OMP_WAIT_POLICY=PASSIVE (unless set) is applied by the `hanseek` package itself, so that it also
precedes torch imports outside this package (sentiment, training)."""
