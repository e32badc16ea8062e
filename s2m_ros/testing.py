"""Helpers for tests that talk over DDS: an isolated domain per run, a context per test.

Tests on one machine (and other runs of them) must not see each other's nodes: every test
uses its own rclpy ``Context`` on a domain id that no other local participant is using, with
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, and waits on graph events with bounded timeouts,
never on fixed sleeps.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from s2m_model.results import PersonResult

# Domain ids whose DDS ports stay below the Linux ephemeral range (ROS 2 docs: 0..101).
MAX_DOMAIN_ID = 101
# FastDDS / RTPS well-known ports: 7400 + 250 * domain (+ 10 for participant 0's unicast).
_PORT_BASE, _DOMAIN_GAIN, _UNICAST_OFFSET = 7400, 250, 10


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def free_domain_id(seed: int | None = None) -> int:
    """A ROS domain id in 1..101 that no local DDS participant appears to use.

    Starts from ``seed`` (default: this process id) so parallel runs spread out, and skips ids
    whose first participant port is bound (someone is on that domain).
    """
    start = os.getpid() if seed is None else seed
    for k in range(MAX_DOMAIN_ID):
        domain = 1 + (start + k) % MAX_DOMAIN_ID
        base = _PORT_BASE + _DOMAIN_GAIN * domain
        if _port_free(base + _UNICAST_OFFSET) and _port_free(base + _UNICAST_OFFSET + 2):
            return domain
    raise RuntimeError("no free ROS domain id in 1..101")


def ros_env(domain_id: int) -> dict[str, str]:
    """Environment for a child process on ``domain_id``, discovery limited to this host."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


@contextmanager
def ros_node(name: str, domain_id: int) -> Iterator[tuple[Any, Any]]:
    """``(node, executor)`` in a fresh rclpy Context on ``domain_id``; shut down on exit."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.remove_node(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def spin_until(executor: Any, condition: Callable[[], bool], timeout_s: float) -> bool:
    """Spin ``executor`` until ``condition()`` is true or ``timeout_s`` passes; returns it."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        executor.spin_once(timeout_sec=min(0.05, remaining))
    return True


def sample_person(seed: int, track_id: int = 1, with_vertices: bool = False) -> PersonResult:
    """A deterministic, plausible-looking :class:`PersonResult` (float32, camera frame).

    Rotations are small random local rotations; joints are random points ~3 m in front of the
    camera (not consistent with the rotations: conversions must not rely on that).
    """
    rng = np.random.default_rng(seed)
    joints = rng.normal(scale=0.4, size=(24, 3)) + np.array([0.0, 0.0, 3.0])
    return PersonResult(
        betas=rng.normal(size=10).astype(np.float32),
        global_orient=rng.normal(scale=1.0, size=3).astype(np.float32),
        body_pose=rng.normal(scale=0.3, size=(23, 3)).astype(np.float32),
        transl=(joints[0] + rng.normal(scale=0.05, size=3)).astype(np.float32),
        joints=joints.astype(np.float32),
        vertices=rng.normal(size=(6890, 3)).astype(np.float32) if with_vertices else None,
        solved=rng.random(24) > 0.2,
        confidence=rng.random(24).astype(np.float32),
        bbox=np.array([10.0, 20.0, 200.0, 400.0], np.float32),
        track_id=track_id,
    )


def start_process(args: list[str], domain_id: int, **popen: Any) -> Any:
    """A child process (e.g. ``[sys.executable, "-m", "s2m_ros.node", ...]``) on
    ``domain_id``, discovery on localhost; stdout/stderr piped as text unless given."""
    import subprocess

    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    popen.setdefault("text", True)
    return subprocess.Popen(args, env=ros_env(domain_id), **popen)


def stop_process(child: Any, timeout_s: float = 30.0, close_stdin: bool = False) -> str:
    """End ``child`` (close its stdin, or SIGTERM; SIGKILL after ``timeout_s``) and return
    ``"rc=<code>"`` plus the tails of its piped output."""
    import subprocess

    # communicate() closes stdin after writing the (empty) input: the child's cue to exit
    stdin = "" if close_stdin and child.stdin is not None and not child.stdin.closed else None
    if child.poll() is None and stdin is None:
        child.terminate()
    try:
        out, err = child.communicate(input=stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    return f"rc={child.returncode}\n{(out or '')[-3000:]}\n{(err or '')[-3000:]}"


def start_script(script: str, domain_id: int, *args: str) -> Any:
    """``python -c script *args`` on ``domain_id`` with a stdin pipe: a test publisher that
    publishes, then waits until :func:`stop_process` (``close_stdin=True``) closes its stdin."""
    import subprocess
    import sys

    return start_process([sys.executable, "-c", script, *args], domain_id, stdin=subprocess.PIPE)


def wait_for_publishers(executor: Any, node: Any, topics: list[str], child: Any, timeout_s: float):
    """Spin until every topic has a publisher (True), or ``child`` exits / time runs out."""
    return (
        spin_until(
            executor,
            lambda: all(node.count_publishers(t) >= 1 for t in topics) or child.poll() is not None,
            timeout_s,
        )
        and child.poll() is None
    )


def child_tail(child: Any) -> str:
    """Exit code and output tails of a finished child, for assertion messages."""
    if child.poll() is None:
        return "(child still running)"
    out = child.stdout.read() if child.stdout else ""
    err = child.stderr.read() if child.stderr else ""
    return f"rc={child.returncode} stdout={out[-500:]!r} stderr={err[-2000:]!r}"
