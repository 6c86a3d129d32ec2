"""pgvector values as numpy arrays (the psycopg loader returns `pgvector.Vector` objects)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def to_np(value: Any, dtype: type = np.float32) -> npt.NDArray[Any]:
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=dtype)
