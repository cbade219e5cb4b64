"""The landmark weight lambda as one function of training progress (paper Eq. 7, Table 5)."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine-increasing", "cosine-decreasing", "step", "step-increasing")
# Table 5's increasing schedules start from (near) 0, so they need no ramp.
INCREASING = ("cosine-increasing", "step-increasing")


def landmark_lambda(progress: float, lambda_max: float, schedule: str = "cosine-increasing",
                    warmup: float = 0.0, ramp: float = 0.0) -> float:
    """lambda at `progress` in [0, 1] of super-net training.

    warmup: fraction of training with lambda = 0 (the paper's t_w).
    ramp: fraction after warm-up over which the constant and decreasing schedules
    (constant, cosine-decreasing, step) rise linearly from 0 (the paper's 10-epoch
    ramp, avoiding an abrupt jump). Constant and step then start from their own
    beginning. cosine-decreasing is Eq. 7 as written, 0.5 (1 + cos(pi (t - t_w) /
    t_total)) lambda_max: its clock starts at the warm-up's end and runs over all of
    training, so after a warm-up it ends above 0; its ramp rises to the value Eq. 7
    has where the ramp ends. The increasing ones take no ramp: cosine-increasing goes
    0 -> lambda_max and reaches lambda_max exactly at progress = 1 (the paper's pick;
    the authors' code never reached the maximum); step-increasing holds a tenth of
    lambda_max for the first half, then all of it.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lambda schedule {schedule!r}; expected one of {SCHEDULES}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warm-up fraction must be in [0, 1), got {warmup}")
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup or (progress == warmup and warmup > 0):
        return 0.0
    # position inside the regularised part of training, in [0, 1]
    s = (progress - warmup) / (1.0 - warmup)
    if schedule == "cosine-increasing":
        return lambda_max * 0.5 * (1.0 - math.cos(math.pi * s))
    if schedule == "step-increasing":  # the mirror of "step"
        return lambda_max * (0.1 if s < 0.5 else 1.0)
    ramp_s = ramp / (1.0 - warmup) if ramp > 0 else 0.0
    if ramp_s >= 1.0:
        raise ValueError(f"a ramp of {ramp:g} after a warm-up of {warmup:g} leaves no training "
                         f"at lambda_max for the {schedule} schedule; shorten the ramp")
    if schedule == "cosine-decreasing":
        def eq7(p: float) -> float:
            return lambda_max * 0.5 * (1.0 + math.cos(math.pi * (p - warmup)))
        ramp_end = warmup + ramp
        return eq7(ramp_end) * (progress - warmup) / ramp if progress < ramp_end else eq7(progress)
    if s < ramp_s:
        return lambda_max * s / ramp_s
    s = (s - ramp_s) / (1.0 - ramp_s)
    if schedule == "constant":
        return lambda_max
    # step: full weight for the first half of the schedule, a tenth after
    return lambda_max * (1.0 if s < 0.5 else 0.1)
