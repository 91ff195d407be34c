"""A faithful local Smartcar: Connect, the OAuth token endpoint, the v2 vehicle API and webhooks.

It is served over real HTTP on loopback (one port per Smartcar host) and driven by the same vehicle
model as the smart-cloud simulator, on a clock tests can move. Entry point: ``SmartcarSimulator``.
"""

from exporter.simulator.smartcar.fleet_adapter import start_cloud
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import SimApp, SmartcarCloud

__all__ = ["SimApp", "SmartcarCloud", "SmartcarSimulator", "start_cloud"]
