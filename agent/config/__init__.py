"""The agent's configuration (docs/technician.md).

:mod:`agent.config.schema` holds the shapes and loading (re-exported here, the
name every caller imports), :mod:`~agent.config.check` what ``config validate``
checks beyond types, :mod:`~agent.config.edit` ``config set``,
:mod:`~agent.config.template` the commented file ``init`` writes, and
:mod:`~agent.config.profiles` the board profiles. Each reader driver owns its
``[[readers]]`` keys (:mod:`agent.readers.registry`).
"""

from agent.config.schema import (
    AgentConfig,
    BufferConfig,
    DeviceConfig,
    FeedbackConfig,
    HeartbeatConfig,
    PortalConfig,
    ReaderConfig,
    SensorConfig,
    config_from_dict,
    load_config,
)

__all__ = [
    "AgentConfig",
    "BufferConfig",
    "DeviceConfig",
    "FeedbackConfig",
    "HeartbeatConfig",
    "PortalConfig",
    "ReaderConfig",
    "SensorConfig",
    "config_from_dict",
    "load_config",
]
