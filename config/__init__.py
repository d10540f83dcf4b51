"""Settings for every part of taogram: `load_settings()` returns one typed `Settings`."""

from config.settings import (
    AuthSettings,
    BrokerSettings,
    CacheSettings,
    ConfigError,
    FeedSettings,
    JobSettings,
    LimitSettings,
    MediaSettings,
    MySQLServer,
    RealtimeSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    load_settings,
    resolve_path,
)
from config.observability.settings import LoggingSettings, MetricsSettings, TracingSettings

__all__ = [
    "AuthSettings", "BrokerSettings", "CacheSettings", "ConfigError", "FeedSettings", "JobSettings", "LimitSettings",
    "MediaSettings", "MySQLServer", "RealtimeSettings", "ServerSettings", "Settings", "StoreSettings", "load_settings",
    "resolve_path", "LoggingSettings", "MetricsSettings", "TracingSettings",
]
