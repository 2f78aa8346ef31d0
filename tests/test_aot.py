"""Ahead-of-time kernel packages (quantum/backends/aot.py): built once, loaded without
dynamo, the dynamo path's values bit for bit; wanted signatures and the builder."""

import json
import os

import pytest
import torch

from superpos_cli.quantum.backends import aot, fourier


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """Packages on, in a folder of this test's own, and a fresh lookup table."""
    monkeypatch.setenv(aot.ENV_SWITCH, "1")
    monkeypatch.setenv(aot.ENV_DIR, str(tmp_path))
    monkeypatch.setattr(fourier._AOT, "_loaded", {})
    monkeypatch.setattr(fourier, "COMPILE", True)
    return tmp_path


def _power_args(name, n, gen):
    x, grad = torch.randn(n, generator=gen) * 5, torch.randn(n, generator=gen)
    coef = torch.randn(2, 5, generator=gen)
    if name == "power_backward":
        return (x.cos(), x.sin(), grad, coef, 1.0, 0.25)
    return (x, coef, 1.0, 0.25)


@pytest.mark.parametrize("name", ["power_forward", "power_backward"])
def test_a_built_package_gives_the_dynamo_paths_bits_at_any_length(name, packages, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    assert fourier._AOT.lookup(name, _power_args(name, 3000, gen)) is None  # not built: wanted
    (wanted,) = aot.pending()
    spec = json.loads(wanted.read_text())
    assert spec["name"] == name and spec["module"] == fourier.__name__
    assert aot.build_pending() == 1 and aot.pending() == []
    fourier._AOT._loaded.clear()
    for n in (3000, 777, 2):
        args = _power_args(name, n, torch.Generator().manual_seed(n))
        packaged = fourier._AOT.lookup(name, args)
        assert packaged is not None
        out = packaged(args)
        dynamo = torch.compile(fourier._KERNELS[name], dynamic=True, options=fourier._INDUCTOR_OPTIONS)(*args)
        eager = fourier._EAGER_KERNELS[name](*args)
        assert len(out) == fourier._DIRECT.n_outputs[name]
        for a, b, c in zip(out, dynamo, eager):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
            torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-3)
    # and through the backend: TrigPolynomial takes the package
    calls = []
    original = fourier._AOT.lookup

    def spy(kernel, args):
        found = original(kernel, args)
        calls.append((kernel, found is not None))
        return found

    fourier._AOT.lookup = spy
    monkeypatch.setattr(fourier, "NATIVE", False)  # packages serve the torch path, not trig_kernels.c
    try:
        x = (torch.randn(500) * 3).requires_grad_()
        coef = torch.randn(2, 5, requires_grad=True)
        fourier.TrigPolynomial.apply(x, coef, 1.0, 0.25).sum().backward()
    finally:
        del fourier._AOT.lookup
    assert (name, True) in calls


def test_without_a_package_or_with_packages_off_nothing_changes(packages, monkeypatch):
    args = _power_args("power_forward", 100, torch.Generator().manual_seed(1))
    assert fourier._AOT.lookup("power_forward", args) is None
    assert len(aot.pending()) == 1
    monkeypatch.setenv(aot.ENV_SWITCH, "0")
    for wanted in aot.pending():
        wanted.unlink()
    fourier._AOT._loaded.clear()
    assert fourier._AOT.lookup("power_forward", args) is None and aot.pending() == []
    assert aot.start_builder() is False
    # arguments packages do not take: gradients, odd strides, ints, tensors off the CPU
    monkeypatch.setenv(aot.ENV_SWITCH, "1")
    x, coef, *rest = args
    for bad in ((x.clone().requires_grad_(), coef, *rest), (torch.randn(10, 2)[:, 0], coef, *rest),
                (x, coef, 1, 0.25), (torch.randn(100, device="meta"), coef.to("meta"), *rest)):
        assert fourier._AOT.lookup("power_forward", bad) is None
    assert aot.pending() == []  # none of them is recorded as wanted


def test_the_builder_starts_detached_once_and_only_when_wanted(packages, monkeypatch):
    started = []

    class FakeProcess:
        pid = os.getpid()  # alive: a second start sees a running builder

    def popen(command, **kwargs):
        started.append((command, kwargs))
        return FakeProcess()

    monkeypatch.setattr(aot.subprocess, "Popen", popen)
    assert aot.start_builder() is False and started == []  # nothing wanted
    fourier._AOT.lookup("power_forward", _power_args("power_forward", 100, torch.Generator().manual_seed(2)))
    assert aot.start_builder() is True
    (command, kwargs), = started
    assert command[1:] == ["-m", "superpos_cli.quantum.backends.aot"]
    assert kwargs["start_new_session"] and kwargs["stdin"] is aot.subprocess.DEVNULL
    assert aot.start_builder() is False and len(started) == 1  # the lock's process is alive


def test_stale_or_failing_wants_are_dropped_not_retried(packages, monkeypatch):
    fourier._AOT.lookup("power_forward", _power_args("power_forward", 100, torch.Generator().manual_seed(3)))
    (wanted,) = aot.pending()
    spec = json.loads(wanted.read_text())
    wanted.write_text(json.dumps({**spec, "stamp": "other code"}))
    assert aot.build_pending() == 0 and aot.pending() == [] and not wanted.exists()
    fourier._AOT._loaded.clear()
    fourier._AOT.lookup("power_forward", _power_args("power_forward", 100, torch.Generator().manual_seed(3)))

    def broken(*args):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(fourier._AOT, "build", broken)
    assert aot.build_pending() == 0
    assert aot.pending() == [] and list(packages.glob("*.failed"))
