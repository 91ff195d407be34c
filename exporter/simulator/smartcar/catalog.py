"""Static Smartcar facts the simulator serves: permissions, endpoint rules, test logins and VINs."""

from __future__ import annotations

from typing import Final

READ_PERMISSIONS: Final = (
    "read_vehicle_info",
    "read_vin",
    "read_battery",
    "read_charge",
    "read_charge_locations",
    "read_charge_records",
    "read_charge_events",
    "read_climate",
    "read_compass",
    "read_diagnostics",
    "read_engine_oil",
    "read_extended_vehicle_info",
    "read_fuel",
    "read_location",
    "read_odometer",
    "read_security",
    "read_service_history",
    "read_speedometer",
    "read_thermometer",
    "read_tires",
    "read_user_profile",
    "read_alerts",
)
CONTROL_PERMISSIONS: Final = (
    "control_charge",
    "control_climate",
    "control_navigation",
    "control_security",
    "control_pin",
    "control_trunk",
)
PERMISSIONS: Final = frozenset(READ_PERMISSIONS + CONTROL_PERMISSIONS)

# GET path -> permission needed. "/" is the attributes endpoint.
READ_PATHS: Final = {
    "/": "read_vehicle_info",
    "/vin": "read_vin",
    "/battery": "read_battery",
    "/battery/capacity": "read_battery",
    "/battery/nominal_capacity": "read_battery",
    "/charge": "read_charge",
    "/charge/limit": "read_charge",
    "/fuel": "read_fuel",
    "/tires/pressure": "read_tires",
    "/engine/oil": "read_engine_oil",
    "/odometer": "read_odometer",
    "/location": "read_location",
    "/security": "read_security",
}
# Paths a simulated-error login still answers normally (reference §5.5: "VIN, attributes and
# permissions are exempt").
STATIC_PATHS: Final = frozenset({"/", "/vin", "/permissions"})

# Permissions a powertrain cannot serve (the basis of vehicle_incompatible and 501 answers).
NOT_CAPABLE: Final = {
    "BEV": frozenset({"read_fuel", "read_engine_oil"}),
    "PHEV": frozenset(),
    "ICE": frozenset({"read_battery", "read_charge", "control_charge"}),
}

# Simulated-error logins: <TYPE>.<CODE>@smartcar.com, or the VIN in single select (§5.5).
ERROR_VINS: Final = {
    "0SCLR000270BE6600": ("COMPATIBILITY", "MAKE_NOT_COMPATIBLE"),
    "0SCLR0002DC18F57F": ("COMPATIBILITY", "SMARTCAR_NOT_CAPABLE"),
    "0SCLR00024C7CDF7A": ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"),
    "0SCLR00026BAAA136": ("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"),
    "0SCLR00021D803C7B": ("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED"),
    "0SCLR00027671837B": ("CONNECTED_SERVICES_ACCOUNT", "NO_VEHICLES"),
    "0SCLR0002B9BAF29F": ("CONNECTED_SERVICES_ACCOUNT", "SUBSCRIPTION"),
    "0SCLR00024E29EEBD": ("CONNECTED_SERVICES_ACCOUNT", "VEHICLE_MISSING"),
    "0SCLR000298A0A649": ("UPSTREAM", "INVALID_DATA"),
    "0SCLR0002A8760B72": ("UPSTREAM", "KNOWN_ISSUE"),
    "0SCLR0002C23E43AB": ("UPSTREAM", "NO_RESPONSE"),
    "0SCLR0002D4878901": ("UPSTREAM", "UNKNOWN_ISSUE"),
    "0SCLR0002E8896323": ("VEHICLE_STATE", "ASLEEP"),
    "0SCLR000221F1E672": ("VEHICLE_STATE", "CHARGING_IN_PROGRESS"),
    "0SCLR0002CBFC7C21": ("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED"),
    "0SCLR0002F8BD90B8": ("VEHICLE_STATE", "DOOR_OPEN"),
    "0SCLR00029CD9D894": ("VEHICLE_STATE", "FULLY_CHARGED"),
    "0SCLR000219CD4A2C": ("VEHICLE_STATE", "HOOD_OPEN"),
    "0SCLR00021D49E58A": ("VEHICLE_STATE", "IGNITION_ON"),
    "0SCLR00024F6EE640": ("VEHICLE_STATE", "IN_MOTION"),
    "0SCLR0002588A5CC1": ("VEHICLE_STATE", "REMOTE_ACCESS_DISABLED"),
    "0SCLR00023C607FDB": ("VEHICLE_STATE", "TRUNK_OPEN"),
    "0SCLR0002E6CC0314": ("VEHICLE_STATE", "UNKNOWN"),
    "0SCLR000247EBF067": ("VEHICLE_STATE", "UNREACHABLE"),
    "0SCLR0002AF1D71A1": ("VEHICLE_STATE", "VEHICLE_OFFLINE_FOR_SERVICE"),
}
ERROR_LOGINS: Final = {f"{t}.{c}@smartcar.com".lower(): vin for vin, (t, c) in ERROR_VINS.items()}

# Connect-error logins (§1.7, §5.5) and the simulator's own additions (marked).
SUCCESSFUL_REQUEST_LOGIN: Final = ("smartcar@successful-request.com", "0SCAUDI037A5ADB1C")
INVALID_SUBSCRIPTION_LOGIN: Final = ("smartcar@invalid-subscription.com", "0SCAUDI0155C49A95")
INCOMPATIBLE_LOGIN: Final = ("smartcar@vehicle-incompatible.com", "0SCAUDI012FE3B132")
NO_VEHICLES_LOGIN: Final = "0-vehicles@smartcar.com"  # simulator: n-vehicles with n = 0
SERVER_ERROR_LOGIN: Final = "smartcar@server-error.com"  # simulator: Connect's server_error

VIN_LEVELS: Final = {"compatible": "PHEV", "phev": "PHEV", "bev": "BEV", "fuel": "ICE"}

CONNECT_ERRORS: Final = {
    "access_denied": "User denied access to application.",
    "no_vehicles": "No vehicles found. Please add vehicles to your account and try again.",
    "invalid_subscription": "The vehicle's connected services subscription is inactive or has "
    "expired.",
    "vehicle_incompatible": "The vehicle is not compatible with the permissions requested.",
    "configuration_error": "There has been an error in the configuration of your application.",
    "server_error": "Smartcar encountered an unexpected error.",
}

# v3 signal codes for webhooks (code, name, group).
SIGNALS: Final = {
    "tractionbattery-stateofcharge": ("StateOfCharge", "TractionBattery"),
    "tractionbattery-range": ("Range", "TractionBattery"),
    "charge-ischarging": ("IsCharging", "Charge"),
    "charge-ischargingcableconnected": ("IsChargingCableConnected", "Charge"),
    "charge-chargelimits": ("ChargeLimits", "Charge"),
    "charge-wattage": ("Wattage", "Charge"),
    "closure-islocked": ("IsLocked", "Closure"),
    "closure-doors": ("Doors", "Closure"),
    "closure-windows": ("Windows", "Closure"),
    "closure-sunroof": ("Sunroof", "Closure"),
    "closure-reartrunk": ("RearTrunk", "Closure"),
    "closure-fronttrunk": ("FrontTrunk", "Closure"),
    "location-preciselocation": ("PreciseLocation", "Location"),
    "odometer-traveleddistance": ("TraveledDistance", "Odometer"),
    "motion-currentspeed": ("CurrentSpeed", "Motion"),
    "internalcombustionengine-fuellevel": ("FuelLevel", "InternalCombustionEngine"),
    "internalcombustionengine-oillife": ("OilLife", "InternalCombustionEngine"),
}
DEFAULT_WEBHOOK_SIGNALS: Final = tuple(SIGNALS)
DEFAULT_TRIGGERS: Final = (
    "tractionbattery-stateofcharge",
    "charge-ischarging",
    "charge-ischargingcableconnected",
    "closure-islocked",
    "odometer-traveleddistance",
)
