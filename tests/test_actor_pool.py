"""The actor pool's gate is an optimisation: a gate that is gone never holds or fails a trial."""
from __future__ import annotations

import time

import ray

from orchestrator.actor_pool import close_gate, pool_gate, wait_for_pool


def test_the_gate_opens_when_the_pool_is_full(ray_address):
    gate = pool_gate(trials=8, concurrency=2, cpus=1, gpus=0)
    assert gate is not None
    waiting = [ray.remote(num_cpus=0)(wait_for_pool).remote(gate) for _ in range(2)]
    assert len(ray.get(waiting, timeout=30)) == 2  # both arrived: neither waits for GATE_S
    close_gate(gate)


def test_a_dead_gate_lets_the_trial_start_at_once(ray_address):
    gate = pool_gate(trials=8, concurrency=2, cpus=1, gpus=0)
    ray.kill(gate)  # as when the node it ran on dies mid-sweep
    start = time.monotonic()
    wait_for_pool(gate)
    assert time.monotonic() - start < 10


def test_one_trial_or_no_room_needs_no_gate(ray_address):
    assert pool_gate(trials=1, concurrency=None, cpus=1, gpus=0) is None
    assert pool_gate(trials=8, concurrency=None, cpus=1, gpus=1) is None  # no GPU here: no room yet
