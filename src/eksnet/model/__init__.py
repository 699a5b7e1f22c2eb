"""The declarative cluster model: spec types, loading and validation."""

from eksnet.model.cluster import Cluster, EniSpec, NodeSpec, PodSpec
from eksnet.model.load import DEMO_CLUSTER, load_cluster, parse_cluster

__all__ = [
    "DEMO_CLUSTER",
    "Cluster",
    "EniSpec",
    "NodeSpec",
    "PodSpec",
    "load_cluster",
    "parse_cluster",
]
