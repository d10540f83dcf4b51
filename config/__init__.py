"""Settings for every part of taogram: `load_settings()` returns one typed `Settings`."""

from config.settings import (
    AuthSettings,
    CacheSettings,
    ConfigError,
    FeedSettings,
    JobSettings,
    LimitSettings,
    MediaSettings,
    MySQLServer,
    ServerSettings,
    Settings,
    StoreSettings,
    load_settings,
    resolve_path,
)

__all__ = [
    "AuthSettings", "CacheSettings", "ConfigError", "FeedSettings", "JobSettings", "LimitSettings",
    "MediaSettings", "MySQLServer", "ServerSettings", "Settings", "StoreSettings", "load_settings",
    "resolve_path",
]
