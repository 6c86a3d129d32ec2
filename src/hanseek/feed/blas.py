"""One BLAS thread for numpy.

The feed's products are small (a few thousand rows times one to four vectors). On two cores shared
with a web server, OpenBLAS's own threads spin against the request threads: measured here, a
1000×384 matrix-vector product took 0.22 ms with 2 BLAS threads and 0.02 ms with one, and with four
query vectors 8.8 ms against 0.12 ms. Requests already run in parallel, so one BLAS thread per
request is the right split. This is process-wide (BLAS has no per-thread setting); PyTorch's
encoders use their own OpenMP pool and are not affected.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def single_threaded_blas() -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it numpy keeps its default
        log.info("threadpoolctl not installed: numpy BLAS keeps its default thread count")
        return
    threadpool_limits(limits=1, user_api="blas")
