"""Configuration: TOML fragments → one validated model; readers for locksmith and Zincati."""

from stagger.config.loader import (
    CONFIG_DIRS,
    ConfigProblem,
    InvalidConfig,
    LoadedConfig,
    fragment_paths,
    host_time_zone,
    load_config,
)
from stagger.config.model import AgentConfig, StaggerConfig
from stagger.config.window_section import BlackoutConfig, WindowConfig

__all__ = [
    "CONFIG_DIRS",
    "AgentConfig",
    "BlackoutConfig",
    "ConfigProblem",
    "InvalidConfig",
    "LoadedConfig",
    "StaggerConfig",
    "WindowConfig",
    "fragment_paths",
    "host_time_zone",
    "load_config",
]
