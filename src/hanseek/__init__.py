"""hanseek: Korean content understanding — feed, search, word weights and sentiment on one store."""

import os

# PyTorch's CPU kernels (and ONNX Runtime's, where built with OpenMP) run on GNU OpenMP, whose idle
# threads spin-wait by default. On a shared 2-core machine that made e5-small inference 3.5x and small
# training steps ~50x slower than passive waiting, which costs nothing measurable for batched work.
# libgomp reads this once, when it is loaded, so it must be set before torch is first imported: here,
# before any hanseek module (encoders, sentiment, train, images) can import it. An explicit setting in
# the environment wins; a process that imported torch before hanseek keeps its own policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
