"""What the numbers were measured on: CPU, memory, Python, backend, and the disk of --dir."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from typing import Any

import numpy as np

import mnemos


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError):
        pass
    return None


def _rotational(device: str) -> bool | None:
    """From sysfs: is the block device (or the disk its partition is on) spinning?"""
    name = os.path.basename(device)
    block = os.path.realpath(os.path.join("/sys/class/block", name))
    for candidate in (block, os.path.dirname(block)):  # a partition's disk is its parent
        try:
            with open(os.path.join(candidate, "queue", "rotational")) as f:
                return f.read().strip() == "1"
        except OSError:
            continue
    return None


def filesystem(path: str) -> dict[str, Any]:
    """Device, type and mount point of ``path``, from ``df -PT`` (POSIX: one line each)."""
    try:
        out = subprocess.run(
            ["df", "-PT", path], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        device, fstype, *_sizes, mount = out[1].split()
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        return {"device": "unknown", "type": "unknown", "mount": "unknown", "rotational": None}
    return {"device": device, "type": fstype, "mount": mount, "rotational": _rotational(device)}


def _source(package_dir: str) -> dict[str, Any]:
    """Which mnemos was measured: git commit (and whether the tree had edits) plus a
    digest of the package's Python files, since others may be editing it meanwhile."""
    digest = hashlib.blake2b(digest_size=8)
    for root, dirs, names in os.walk(package_dir):
        dirs.sort()
        for name in sorted(n for n in names if n.endswith(".py")):
            with open(os.path.join(root, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=package_dir, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--", ".")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "edited": None if status is None else bool(status),
        "py_digest": digest.hexdigest(),
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def describe(path: str) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        "mem_total_gib": _mem_total_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": np.__version__,
        "mnemos": mnemos.__version__,
        "backend": mnemos.backend(),
        "mnemos_source": _source(os.path.dirname(os.path.abspath(mnemos.__file__))),
        "load_average_start": load_average(),
        "dir": os.path.abspath(path),
        "filesystem": filesystem(path),
    }
