"""Text encoders: the TextEncoder protocol, backends (PyTorch, ONNX Runtime), the e5-small converter and
the model registry."""

import os

# PyTorch's CPU kernels run on GNU OpenMP, whose idle threads spin-wait by default. On a shared 2-core
# machine that made e5-small inference 3.5x and small training steps ~50x slower than passive waiting,
# which costs nothing measurable for batched work. libgomp reads this when it is loaded, so it must be
# set before torch is imported; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
