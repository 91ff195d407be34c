"""Scripted commands: an authenticated HTTP API (and a CLI for it) that sends a command to a car and
then checks, from the car's own later reports, whether the car actually did it.

Modules, one job each: ``spec`` (what each command takes), ``expect`` (what state proves it worked),
``settings`` (the ``[commands]`` config table), ``auth`` (bearer tokens), ``record`` (one command's
life), ``audit`` (its SQLite row), ``service`` (safety rules, sending, verification), ``metrics``,
``openapi``, ``web`` (routes) and ``cli``.
"""
