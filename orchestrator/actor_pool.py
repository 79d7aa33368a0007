"""The sweep's actor pool, filled before its first trial runs.

Tune asks a new actor for each pending trial, and gives the trial a reused actor instead (removing
the new one) if one frees up first. When trials are shorter than an actor's start (seconds: torch,
Tune, the dataset), the first actor always frees up first: the sweep runs one trial at a time on it
while actors that never run a trial are started and removed, burning a core. So each of the first
actors' first step waits until the pool is full (as many actors as trials can run at once on the
cluster now, each in a trial) or GATE_S has passed; no actor frees up before the pool is full, and
from then on each finished trial's actor goes to the next trial.
"""
from __future__ import annotations

import asyncio
import math

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

GATE_S = 60.0  # the longest the first trials wait for the rest of the pool (a slow node, a dead actor)


@ray.remote(num_cpus=0)
class PoolGate:
    def __init__(self, size: int):
        self.size, self.arrived, self.full = size, 0, asyncio.Event()

    async def arrive(self, timeout_s: float) -> None:
        self.arrived += 1
        if self.arrived >= self.size:
            self.full.set()
        try:
            await asyncio.wait_for(self.full.wait(), timeout_s)
        except asyncio.TimeoutError:
            self.full.set()  # the pool is what came: nobody waits again


def pool_size(trials: int, concurrency: int | None, cpus: float, gpus: float) -> int:
    """How many trials can run at once on the cluster as it is now (an autoscaler may add nodes later)."""
    free = ray.cluster_resources()
    slots = [trials, concurrency or trials, math.floor(free.get("CPU", 0) / cpus) if cpus else trials]
    if gpus:
        slots.append(math.floor(free.get("GPU", 0) / gpus))
    return max(0, min(slots))


def pool_gate(trials: int, concurrency: int | None, cpus: float, gpus: float):
    """A gate for the first actors, or None when there is no pool to fill (one trial, or no room yet)."""
    size = pool_size(trials, concurrency, cpus, gpus)
    if size <= 1:
        return None
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return PoolGate.options(scheduling_strategy=here).remote(size)


def close_gate(gate) -> None:
    """End the gate's actor with its sweep (a driver runs many sweeps: tests, follow-ups)."""
    if gate is not None:
        ray.kill(gate)


def wait_for_pool(gate) -> None:
    if gate is None:
        return
    try:
        ray.get(gate.arrive.remote(GATE_S), timeout=2 * GATE_S)
    except (RayActorError, GetTimeoutError):  # the gate is gone or stuck: the pool is what came
        pass
