"""Faithful local fakes of the car clouds, driven by one provider-neutral vehicle model.

- ``fleet.Fleet`` / ``vehicle.SimVehicle`` / ``state.VehicleState``: the cars (driving, parking,
  charging physics on a deterministic schedule, lazy in time), with ground truth and commands.
- ``smart``: the smart cloud (EU + INTL login chains, signed API v1/v2, OTA) on loopback.
- ``smartcar``: the Smartcar cloud (owned by the Smartcar provider).
- ``faults``: scripted and random faults any cloud can inject.
- ``runner.start_simulator``: start every cloud on its own loopback ports (``carmetrics simulate``).

Submodules are imported on demand; importing this package stays cheap.
"""
