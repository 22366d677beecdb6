"""Neighbour-to-neighbour: heralded entanglement generation (single-click, double-click), classical channels."""

from qfabric.link.heralded import ClassicalChannel, HeraldedLink, Scheme

__all__ = ["ClassicalChannel", "HeraldedLink", "Scheme"]
