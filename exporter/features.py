"""The config tables owned by features, and the model that validates each.

Adding a feature's table is one line here plus its model (an ``exporter.settings.Section``) in the
feature's own module; ``check-config`` and ``run`` then validate it (``exporter.preflight``).
The analysis tables (``analysis``, ``places``, ``tariffs``) are validated by the analysis package
(it loads pandas, which ``run`` never does): ``check-config`` checks them too, ``run`` does not
read them, so they are listed without a model.
"""

from __future__ import annotations

from typing import Final

from exporter.commands.settings import CommandsSection
from exporter.fleet.settings import ShardSection
from exporter.mqtt.settings import MqttSection
from exporter.settings import Section
from exporter.tokens import TokensSection

FEATURE_SECTIONS: Final[dict[str, type[Section] | None]] = {
    "commands": CommandsSection,
    "tokens": TokensSection,
    "shard": ShardSection,
    "analysis": None,
    "places": None,
    "tariffs": None,
    "mqtt": MqttSection,
}
