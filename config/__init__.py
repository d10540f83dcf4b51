"""Settings for every part of taogram: `load_settings()` returns one typed, validated `Settings`."""

from config.loading import load_settings, load_settings_or_exit
from config.settings import (
    AuthSettings,
    BrokerBackend,
    BrokerSettings,
    CacheBackend,
    CacheSettings,
    ConfigError,
    ExploreSettings,
    FeedSettings,
    JobSettings,
    LimitSettings,
    LogFormat,
    LoggingSettings,
    LogLevel,
    MediaBackend,
    MediaSettings,
    MessageSettings,
    MetricsSettings,
    MySQLServer,
    NotificationSettings,
    RealtimeSettings,
    SearchSettings,
    ServerSettings,
    Settings,
    StoreBackend,
    StoreSettings,
    StorySettings,
    ThrottleSettings,
    TracingSettings,
    resolve_path,
)

__all__ = [
    "AuthSettings", "BrokerBackend", "BrokerSettings", "CacheBackend", "CacheSettings", "ConfigError",
    "ExploreSettings", "FeedSettings", "SearchSettings",
    "JobSettings", "LimitSettings", "MediaBackend", "MediaSettings", "MessageSettings", "MySQLServer",
    "NotificationSettings", "RealtimeSettings", "ServerSettings", "Settings", "StoreBackend", "StoreSettings",
    "ThrottleSettings",
    "StorySettings",
    "load_settings",
    "load_settings_or_exit", "resolve_path",
    # observability
    "LogFormat", "LogLevel", "LoggingSettings", "MetricsSettings", "TracingSettings",
]
