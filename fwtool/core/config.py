"""The per-user config file (TOML). Today it holds vendor overrides::

    [vendor.pico-sdk]
    path = "/home/me/pico/pico-sdk"       # use this checkout instead of the cache (like PICO_SDK_PATH)
    [vendor.pico-tflmicro]
    url = "/srv/mirrors/pico-tflmicro.git"   # clone from a mirror instead of the manifest URL
"""
from __future__ import annotations

from functools import lru_cache

from fwtool.core.errors import BadInput
from fwtool.core.paths import config_file
from fwtool.core.tomlcompat import tomllib


@lru_cache(maxsize=1)
def load() -> dict:
    path = config_file()
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"config file {path} is not valid TOML ({e})", "fix or delete that file") from e


def vendor_override(name: str) -> dict:
    return dict(load().get("vendor", {}).get(name, {}))
