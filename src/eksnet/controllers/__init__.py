"""Controllers: pure functions from the cluster model to the data-plane state."""

from eksnet.controllers.cluster import build_state

__all__ = ["build_state"]
