"""eksnet: the life of a packet in Amazon EKS, simulated and proven on a real kernel."""

__version__ = "0.1.0"
