"""Test doubles for tools no reachable package registry has, packaged as .deb and served from a local apt repo."""
