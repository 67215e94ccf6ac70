"""Device plumbing: the configuration file, fg.devices(), default devices, mixed-device errors."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fusegrad as fg
from fusegrad.runtime import registry
from fusegrad.runtime.buffer import CountingAllocator
from fusegrad.runtime.config import BackendConfig, load_config
from fusegrad.runtime.inventory import PhysicalDevice


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_missing_config_file_means_defaults(tmp_path):
    config = load_config(tmp_path / "absent.json")
    assert config.path is None and config.default_device is None
    assert config.backend("cuda") == BackendConfig(True, None)


def test_config_file_enables_disables_and_picks_devices(tmp_path):
    path = write(tmp_path, {"default_device": "opencl:0",
                            "backends": {"cuda": {"devices": [1, 0]}, "opencl": {"enabled": False}}})
    config = load_config(path)
    assert config.path == path and config.default_device == "opencl:0"
    assert config.backend("cuda") == BackendConfig(True, (1, 0))
    assert config.backend("opencl").enabled is False
    assert config.backend("cpu").enabled is True


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ([1, 2], "top level must be a JSON object"),
    ({"backend": {}}, "unknown keys"),
    ({"default_device": 3}, "default_device"),
    ({"backends": {"tpu": {}}}, "unknown backend 'tpu'"),
    ({"backends": {"cuda": {"enabled": "yes"}}}, "enabled must be true or false"),
    ({"backends": {"cuda": {"devices": [0, -1]}}}, "list of device indices"),
    ({"backends": {"cuda": {"devices": [True]}}}, "list of device indices"),
    ({"backends": {"cuda": {"device": [0]}}}, "must be an object with"),
    ({"backends": {"cpu": {"enabled": False}}}, "cpu backend cannot be disabled"),
])
def test_malformed_config_files_raise_naming_the_file(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(fg.DeviceError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_config_path_follows_the_environment(tmp_path, monkeypatch):
    from fusegrad.runtime.config import config_path
    monkeypatch.setenv("FUSEGRAD_CONFIG", str(tmp_path / "mine.json"))
    assert config_path() == tmp_path / "mine.json"
    monkeypatch.delenv("FUSEGRAD_CONFIG")
    assert config_path() == Path.home() / ".config" / "fusegrad" / "config.json"


@pytest.mark.parametrize("content, message", [
    ({"backends": {"cuda": {"devices": [0, 1, 0]}}}, "lists a device twice"),
    ({"backends": {"cpu": {"devices": [1]}}}, "backends.cpu.devices can only be"),
])
def test_config_rejects_duplicate_and_cpu_device_ids(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(fg.DeviceError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


# ---- the registry: fg.devices(), the config file applied, device names ------------------------

class FakeGPU:
    """Stands in for a backend's device class: records the (physical) name it was built with."""

    kind = "cuda"

    def __init__(self, name: str):
        self.name = self.built_as = name
        self.allocator = CountingAllocator(name, lambda nbytes: None)


TWO_GPUS = (PhysicalDevice("Fake GPU A", 8 << 30), PhysicalDevice("Fake GPU B", 16 << 30))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """The registry as a new process has it (no config read, no backend probed, no default set);
    monkeypatch puts the real state back afterwards. The cpu device object is kept: it never remaps."""
    monkeypatch.setattr(registry, "_FACTORIES", {"cpu": registry._FACTORIES["cpu"]})
    for name in ("_MISSING", "_PHYSICAL", "_VISIBLE"):
        monkeypatch.setattr(registry, name, {})
    monkeypatch.setattr(registry, "_DEVICES", {k: v for k, v in registry._DEVICES.items() if k == "cpu"})
    monkeypatch.setattr(registry, "_CONFIG", [])
    monkeypatch.setattr(registry, "_default", [])
    monkeypatch.delenv("FUSEGRAD_DEVICE", raising=False)
    monkeypatch.setenv("FUSEGRAD_CONFIG", str(tmp_path / "absent.json"))


@pytest.fixture
def fake_cuda(monkeypatch, fresh):
    """A CUDA backend with two GPUs, whatever this machine has."""
    monkeypatch.setitem(registry._OPTIONAL, "cuda", (FakeGPU, lambda: None))
    monkeypatch.setitem(registry._INVENTORY, "cuda", lambda: TWO_GPUS)


def use_config(monkeypatch, tmp_path: Path, content: object) -> Path:
    path = write(tmp_path, content)
    monkeypatch.setenv("FUSEGRAD_CONFIG", str(path))
    return path


def test_devices_lists_the_cpu_with_its_ram(fresh):
    found = fg.devices()
    assert all(isinstance(d, fg.DeviceInfo) for d in found)
    cpu = found[0]
    assert (cpu.name, cpu.kind, cpu.physical_id) == ("cpu", "cpu", 0)
    assert cpu.memory == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") > 2**27
    assert f"{os.cpu_count()} threads" in cpu.description
    assert [d.name for d in found].count("cpu") == 1
    assert fg.DeviceInfo.__dataclass_params__.frozen


@pytest.mark.skipif("opencl" not in registry.available(), reason="no OpenCL device here")
def test_devices_lists_every_opencl_device_in_the_runtimes_order(fresh):
    import pyopencl as cl
    physical = [d for p in cl.get_platforms() for d in p.get_devices()]
    found = [d for d in fg.devices() if d.kind == "opencl"]
    assert [d.name for d in found] == [f"opencl:{i}" for i in range(len(physical))]
    for info, device in zip(found, physical):
        assert device.name in info.description and info.memory == device.global_mem_size > 0
        assert registry.get(info.name).cl_device.int_ptr == device.int_ptr  # "opencl:N" is the N-th listed


def test_devices_enumerates_every_gpu(fake_cuda):
    found = [d for d in fg.devices() if d.kind == "cuda"]
    assert [(d.name, d.description, d.memory, d.physical_id) for d in found] == [
        ("cuda:0", "Fake GPU A", 8 << 30, 0), ("cuda:1", "Fake GPU B", 16 << 30, 1)]
    assert registry.get("cuda:1").built_as == "cuda:1" and registry.get("cuda") is registry.get("cuda:0")


def test_verbose_prints_devices_and_why_backends_are_absent(fresh, monkeypatch, capsys):
    monkeypatch.setitem(registry._OPTIONAL, "cuda", (FakeGPU, lambda: "cuda-python cannot be imported (test)"))
    found = fg.devices(verbose=True)
    out = capsys.readouterr().out
    assert found == fg.devices() and "cuda" not in {d.kind for d in found}
    assert registry.unavailable()["cuda"] == "cuda-python cannot be imported (test)"
    assert "cuda-python cannot be imported (test)" in out
    for kind, reason in registry.unavailable().items():
        assert re.search(rf"^{kind}\s+absent\s+{re.escape(reason)}$", out, re.MULTILINE), out
    for d in found:
        assert re.search(rf"^{re.escape(d.name)}\s", out, re.MULTILINE), out
    assert "default device: cpu" in out and "(not present)" in out
    with pytest.raises(fg.DeviceError, match=r"cuda-python cannot be imported \(test\)"):
        fg.zeros(2, device="cuda")


def test_disabled_backend_is_absent_and_never_probed(fresh, monkeypatch, tmp_path):
    def probe() -> str | None:
        raise AssertionError("a disabled backend's driver was initialized")
    monkeypatch.setitem(registry._OPTIONAL, "opencl", (FakeGPU, probe))
    path = use_config(monkeypatch, tmp_path, {"backends": {"opencl": {"enabled": False}}})
    assert "opencl" not in {d.kind for d in fg.devices()} and "opencl" not in registry.available()
    assert registry.unavailable()["opencl"] == f"disabled in {path}"
    with pytest.raises(fg.DeviceError, match="disabled in") as info:
        fg.ones(2, device="opencl:0")
    assert str(path) in str(info.value)


def test_config_device_list_reorders_and_limits_gpus(fake_cuda, monkeypatch, tmp_path):
    path = use_config(monkeypatch, tmp_path, {"backends": {"cuda": {"devices": [1]}}})
    found = [d for d in fg.devices() if d.kind == "cuda"]
    assert [(d.name, d.description, d.physical_id) for d in found] == [("cuda:0", "Fake GPU B", 1)]
    device = registry.get("cuda:0")
    assert device.built_as == "cuda:1"  # the backend is given the physical id ...
    assert device.name == device.allocator.device == "cuda:0"  # ... everything else sees the configured name
    with pytest.raises(fg.DeviceError, match="does not exist") as info:
        registry.canonical("cuda:1")
    assert str(path) in str(info.value) and "'cuda:1'" in str(info.value)


def test_config_device_list_order_names_the_devices(fake_cuda, monkeypatch, tmp_path, capsys):
    use_config(monkeypatch, tmp_path, {"backends": {"cuda": {"devices": [1, 0]}}})
    assert [(d.name, d.physical_id) for d in fg.devices() if d.kind == "cuda"] == [("cuda:0", 1), ("cuda:1", 0)]
    assert [registry.get(f"cuda:{i}").built_as for i in (0, 1)] == ["cuda:1", "cuda:0"]
    fg.devices(verbose=True)
    out = capsys.readouterr().out
    assert re.search(r"^cuda:0 .*Fake GPU B \[physical id 1\]$", out, re.MULTILINE), out


def test_configured_id_the_machine_lacks(fake_cuda, monkeypatch, tmp_path):
    path = use_config(monkeypatch, tmp_path, {"backends": {"cuda": {"devices": [5, 0]}}})
    assert [(d.name, d.physical_id) for d in fg.devices() if d.kind == "cuda"] == [("cuda:1", 0)]
    with pytest.raises(fg.DeviceError, match=r"'cuda:0' does not exist.*physical ids \[5, 0\]") as info:
        registry.get("cuda:0")
    assert str(path) in str(info.value)


def test_empty_device_list_makes_the_backend_absent(fake_cuda, monkeypatch, tmp_path):
    path = use_config(monkeypatch, tmp_path, {"backends": {"cuda": {"devices": []}}})
    assert "cuda" not in registry.available()
    assert str(path) in registry.unavailable()["cuda"] and "empty" in registry.unavailable()["cuda"]


def test_default_device_precedence(fake_cuda, monkeypatch, tmp_path):
    assert fg.get_default_device() == "cpu"
    use_config(monkeypatch, tmp_path, {"default_device": "cuda:1"})
    monkeypatch.setattr(registry, "_CONFIG", [])  # as in a new process with this file
    assert fg.get_default_device() == "cuda:1" and fg.zeros(2).device == "cuda:1"
    monkeypatch.setenv("FUSEGRAD_DEVICE", "cpu")  # the environment beats the file, even naming cpu
    assert fg.get_default_device() == "cpu"
    monkeypatch.setenv("FUSEGRAD_DEVICE", "cuda")
    assert fg.get_default_device() == "cuda:0"
    fg.set_default_device("cpu")  # code beats both
    assert fg.get_default_device() == "cpu" and fg.zeros(2).device == "cpu"
    fg.set_default_device(None)
    assert fg.get_default_device() == "cuda:0"
    monkeypatch.delenv("FUSEGRAD_DEVICE")
    assert fg.get_default_device() == "cuda:1"


def test_bad_default_device_names_where_it_was_set(fresh, monkeypatch, tmp_path):
    path = use_config(monkeypatch, tmp_path, {"default_device": "tpu:0"})
    with pytest.raises(fg.DeviceError, match="unknown device 'tpu:0'") as info:
        fg.zeros(2)
    assert f"default_device in {path}" in str(info.value)
    monkeypatch.setenv("FUSEGRAD_DEVICE", "cpu:3")
    with pytest.raises(fg.DeviceError, match="FUSEGRAD_DEVICE"):
        fg.zeros(2)


def test_malformed_config_raises_at_first_lookup_naming_the_file(fresh, monkeypatch, tmp_path):
    path = use_config(monkeypatch, tmp_path, "{not json")
    for lookup in (fg.devices, lambda: fg.zeros(2), lambda: registry.get("cpu"), registry.available):
        with pytest.raises(fg.DeviceError, match="not valid JSON") as info:
            lookup()
        assert str(path) in str(info.value)
    path.write_text(json.dumps({"default_device": "cpu"}))  # fixed: the next lookup reads it
    assert fg.devices()[0].name == "cpu"


def test_import_neither_fails_nor_touches_drivers(tmp_path):
    path = write(tmp_path, "{not json")
    code = ("import sys, fusegrad as fg\n"
            "assert not {'pyopencl', 'cuda.bindings.driver'} & set(sys.modules), 'a driver was imported'\n"
            "try:\n    fg.devices()\nexcept fg.DeviceError as e:\n    print('DeviceError', e)\n")
    env = {**os.environ, "FUSEGRAD_CONFIG": str(path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("DeviceError") and str(path) in out.stdout


@pytest.mark.parametrize("name", ["cuda:x", "cpu:1", "cpu:", "opencl:-1", "cuda:0:1", "", "cuda 0", "cpu:1.0"])
def test_bad_device_strings_raise_device_error_naming_them(fresh, name):
    with pytest.raises(fg.DeviceError) as info:
        registry.canonical(name)
    assert repr(name) in str(info.value)
    assert not isinstance(info.value, ValueError)
    with pytest.raises(fg.DeviceError):
        fg.zeros(2, device=name)


@pytest.mark.parametrize("name", ["cuda:x", "cpu:1", "opencl:99"])
def test_to_a_bad_device_is_a_device_error_not_a_dtype_error(fresh, name):
    with pytest.raises(fg.DeviceError, match=re.escape(repr(name))):
        fg.ones(2).to(name)


def test_to_an_absent_backend_says_why(fresh, monkeypatch):
    monkeypatch.setitem(registry._OPTIONAL, "cuda", (FakeGPU, lambda: "no GPU here (test)"))
    with pytest.raises(fg.DeviceError, match=r"no GPU here \(test\)"):
        fg.ones(2).to("cuda")


@pytest.mark.parametrize("name, expected", [("cpu", "cpu"), ("CPU:0", "cpu"), (" cpu ", "cpu")])
def test_device_strings_that_mean_the_cpu(fresh, name, expected):
    assert registry.canonical(name) == expected and fg.zeros(2, device=name).device == expected


def test_num_threads_round_trip():
    """fg.get_num_threads reports what fg.set_num_threads set (like torch's pair)."""
    before = fg.get_num_threads()
    try:
        for n in (1, 3):
            fg.set_num_threads(n)
            assert fg.get_num_threads() == n
    finally:
        fg.set_num_threads(before)
    assert fg.get_num_threads() == before
