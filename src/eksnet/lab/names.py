"""The one place that maps the state's namespace names to the lab's network namespaces.

Every lab namespace is `<prefix><state name>` (the fabric is `<prefix>vpc`), and everything the
lab creates lives inside such a namespace. The default prefix is `eksnet-lab-` rather than bare
`eksnet-` so that a lab never deletes other `eksnet-*` namespaces on a shared machine (probes,
other tools' scratch namespaces); tests use prefixes of their own that extend it
(`eksnet-lab-t…-`) so they can run while a user's lab is up.

A prefix alone does not say which lab a namespace belongs to once one prefix extends another
(`eksnet-lab-` and `eksnet-lab-t42-`): the run file (`run_file`) records the exact names, and
`lifecycle.lab_netns` decides membership from both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from eksnet.dataplane.state import DataplaneState, Namespace
from eksnet.errors import NotModelled
from eksnet.lab.inside import Inside

DEFAULT_PREFIX = "eksnet-lab-"
PREFIX_ENV = "EKSNET_LAB_PREFIX"
RUN_DIR = "/run/eksnet"
"""Where run files live: tmpfs, so they vanish at boot together with the namespaces they name."""
RUN_FILE_STEM = "lab-"
RUN_FILE_SUFFIX = ".json"
FABRIC_SUFFIX = "vpc"
"""The VPC fabric's namespace is `<prefix>vpc`; no state namespace may carry that name."""
INTERNET_SUFFIX = "internet"
"""The internet's namespace is `<prefix>internet` (`lab/attachments.py`)."""
IMDS_SUFFIX = "imds"
"""The instance metadata service's namespace is `<prefix>imds` (`lab/attachments.py`)."""
RESERVED = frozenset({FABRIC_SUFFIX, INTERNET_SUFFIX, IMDS_SUFFIX})
NAT_GATEWAY_PREFIX = "nat-"
"""A NAT gateway's namespace is `<prefix><its id>`; ids start `nat-`, which no state namespace
may (`LabNames.netns`)."""
NLB_PREFIX = "elb-"
"""An NLB node's namespace is `<prefix>elb-<name>-<az>` (`lab/fabric.py`)."""
ATTACHMENT_PREFIXES = (NAT_GATEWAY_PREFIX, NLB_PREFIX)
NAME_MAX = 255
"""The longest file name, so the longest `/run/netns` entry (`NAME_MAX`)."""


@dataclass(frozen=True, slots=True)
class LabNames:
    """Naming of one lab instance (one prefix). `run_dir` is a parameter only so that tests of
    the run-file logic can use a directory of their own."""

    prefix: str = DEFAULT_PREFIX
    run_dir: str = RUN_DIR

    def __post_init__(self) -> None:
        if not self.prefix.startswith("eksnet-"):
            raise ValueError(f"lab prefix {self.prefix!r} must start with 'eksnet-'")
        if "/" in self.prefix or any(c.isspace() for c in self.prefix):
            raise ValueError(f"lab prefix {self.prefix!r} must be a plain file name")

    @classmethod
    def from_env(cls) -> LabNames:
        """The prefix from `$EKSNET_LAB_PREFIX`, else the default."""
        return cls(os.environ.get(PREFIX_ENV, DEFAULT_PREFIX))

    def netns(self, state_name: str) -> str:
        """The lab namespace that realizes the state namespace `state_name`. A node named like
        the lab's own namespaces (`vpc`, `internet`), or a name too long for a file name once
        prefixed, cannot be built: the lab says so rather than fail half-way."""
        if state_name in RESERVED or state_name.startswith(ATTACHMENT_PREFIXES):
            raise NotModelled(
                f"a node or pod namespace named {state_name!r} in the lab, whose own "
                f"{state_name!r} namespace has that name"
            )
        name = f"{self.prefix}{state_name}"
        if len(name.encode()) > NAME_MAX:
            raise NotModelled(
                f"lab namespace names over {NAME_MAX} bytes ({state_name[:40]}… with the "
                f"prefix {self.prefix!r}): a shorter --prefix or node name is needed"
            )
        return name

    @property
    def fabric(self) -> str:
        """The namespace holding the VPC fabric (bridge, proxy ARP, source/destination check)."""
        return f"{self.prefix}{FABRIC_SUFFIX}"

    @property
    def internet(self) -> str:
        """The namespace holding the internet beyond the VPC's internet gateway: every external
        host's address, wired to the fabric's bridge (`lab/fabric.py`)."""
        return f"{self.prefix}{INTERNET_SUFFIX}"

    def attachment(self, place: str) -> str:
        """The namespace of something the lab adds to the state (`lab/attachments.py`): the
        internet, the IMDS, a NAT gateway by its id."""
        if place not in RESERVED and not place.startswith(ATTACHMENT_PREFIXES):
            raise ValueError(f"{place!r} is no attachment of the lab")
        return f"{self.prefix}{place}"

    def is_lab(self, netns: str) -> bool:
        """Whether `netns` carries this lab's prefix: a name test only; whether the namespace
        belongs to this lab (and not to one whose prefix extends this one) is
        `lifecycle.lab_netns`."""
        return netns.startswith(self.prefix)

    def state_name(self, netns: str) -> str | None:
        """The state namespace a lab namespace realizes; None for the fabric, the lab's
        attachments (internet, IMDS, NAT gateways) or foreign names."""
        if not self.is_lab(netns):
            return None
        name = netns[len(self.prefix) :]
        if name in RESERVED or name.startswith(ATTACHMENT_PREFIXES):
            return None
        return name

    def inside(self, namespace: Namespace) -> Inside:
        """How `lab exec` runs a command in `namespace` so that it prints what the real machine
        prints (see `inside.py`). `/run/netns` shows every namespace the state says it can
        name, i.e. each veth peer's `LinkPeer.netns`, under that name: a node names its pods
        (`cni-…`, as containerd's files on a real node), a pod names nothing (it knows its node
        by netnsid only). `iptables*` runs the backend the state pins."""
        peers = (link.peer.netns for link in namespace.links if link.peer and link.peer.netns)
        shown = tuple((peer, self.netns(peer)) for peer in dict.fromkeys(peers))
        backend = namespace.iptables.backend if namespace.iptables is not None else None
        return Inside(self.netns(namespace.name), shown, backend)

    def inside_fabric(self, state: DataplaneState) -> Inside:
        """The fabric is no real machine: it names the nodes, so `ip link` there says which node
        each bridge port is wired to."""
        return Inside(self.fabric, tuple((n.name, self.netns(n.name)) for n in state.nodes()))

    @property
    def run_file(self) -> str:
        """Where `lab up` records, before creating anything, the exact namespaces it creates and
        which cluster they hold (for down/exec/verify/status). The file name carries the prefix
        verbatim: `eksnet-lab` and `eksnet-lab-` are different labs and must not share a file."""
        return os.path.join(self.run_dir, f"{RUN_FILE_STEM}{self.prefix}{RUN_FILE_SUFFIX}")


def prefix_of_run_file(file_name: str) -> str | None:
    """The prefix a run file's name carries (the inverse of `LabNames.run_file`), or None for
    any other file; used when a run file's content cannot be read."""
    if not (file_name.startswith(RUN_FILE_STEM) and file_name.endswith(RUN_FILE_SUFFIX)):
        return None
    prefix = file_name[len(RUN_FILE_STEM) : -len(RUN_FILE_SUFFIX)]
    return prefix if prefix.startswith("eksnet-") else None
