"""EC2 network limits per instance type: how many ENIs, and how many IPv4 addresses per ENI.

Source: the VPC CNI's `pkg/vpc/vpc_ip_resource_limit.go` as summarised in vpc-cni.md §3.6 (all
rows are Nitro types with one network card). The table is data so that adding a type is one line;
a cluster naming a type not listed here is told so instead of getting a guessed limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InstanceLimits:
    enis: int
    ipv4_per_eni: int
    """Including the ENI's own primary address, so pods get `ipv4_per_eni - 1` per ENI."""

    def max_pods_secondary_ip(self) -> int:
        """`misc/eni-max-pods.txt`: ENIs · (IPv4 per ENI − 1) + 2 host-network pods."""
        return self.enis * (self.ipv4_per_eni - 1) + 2


INSTANCE_LIMITS: Mapping[str, InstanceLimits] = {
    "t3.micro": InstanceLimits(2, 2),
    "t3.small": InstanceLimits(3, 4),
    "t3.medium": InstanceLimits(3, 6),
    "t3.large": InstanceLimits(3, 12),
    "t3.xlarge": InstanceLimits(4, 15),
    "t3.2xlarge": InstanceLimits(4, 15),
    "t3a.medium": InstanceLimits(3, 6),
    "t3a.large": InstanceLimits(3, 12),
    "t4g.medium": InstanceLimits(3, 6),
    "m5.large": InstanceLimits(3, 10),
    "m5.xlarge": InstanceLimits(4, 15),
    "m5.2xlarge": InstanceLimits(4, 15),
    "m5.4xlarge": InstanceLimits(8, 30),
    "m5.8xlarge": InstanceLimits(8, 30),
    "m5.12xlarge": InstanceLimits(8, 30),
    "m5.16xlarge": InstanceLimits(15, 50),
    "m5.24xlarge": InstanceLimits(15, 50),
    "c5.large": InstanceLimits(3, 10),
    "c5.xlarge": InstanceLimits(4, 15),
    "c5.2xlarge": InstanceLimits(4, 15),
    "c5.4xlarge": InstanceLimits(8, 30),
    "c5.9xlarge": InstanceLimits(8, 30),
    "r5.large": InstanceLimits(3, 10),
    "r5.xlarge": InstanceLimits(4, 15),
    "m6i.large": InstanceLimits(3, 10),
    "m6i.xlarge": InstanceLimits(4, 15),
    "m7i.large": InstanceLimits(3, 10),
    "m7i.xlarge": InstanceLimits(4, 15),
    "m7g.large": InstanceLimits(3, 10),
    "c6g.large": InstanceLimits(3, 10),
}
