"""Device plumbing: the configuration file, fg.devices(), default devices, mixed-device errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import fusegrad as fg
from fusegrad.runtime.config import BackendConfig, load_config


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
