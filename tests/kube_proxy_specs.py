"""Cluster specs the kube-proxy tests share (controllers and lab): the reference cluster of
kube-proxy.md §6.1, the Services of upstream's TestOverallIPTablesRules (§9), and a cluster with
every Service shape the controller writes. Written by hand from the specs, in our spec format."""

from __future__ import annotations

REFERENCE = """\
name: reference
region: us-east-1
kubernetes: {version: "1.31", serviceCidr: 172.20.0.0/16}
vpc:
  id: vpc-0000000000000000a
  cidrs: [10.0.0.0/16]
  subnets:
    - {name: a, az: us-east-1a, cidr: 10.0.1.0/24, routeTable: main}
    - {name: b, az: us-east-1b, cidr: 10.0.2.0/24, routeTable: main}
cni: {version: v1.19.2}
kubeProxy: {version: v1.31}
nodeDefaults: {iptables: nft}
nodes:
  - name: ip-10-0-1-10.ec2.internal
    subnet: a
    enis:
      - {linux: eth0, ifindex: 2, id: eni-0a, device: 0, mac: "02:00:0a:00:01:0a",
         primaryIp: 10.0.1.10, secondaryIps: [10.0.1.23, 10.0.1.24]}
  - name: ip-10-0-2-20.ec2.internal
    subnet: b
    enis:
      - {linux: eth0, ifindex: 2, id: eni-0b, device: 0, mac: "02:00:0a:00:02:14",
         primaryIp: 10.0.2.20, secondaryIps: [10.0.2.57, 10.0.2.58, 10.0.2.59]}
pods:
  - {name: web-a, node: ip-10-0-1-10.ec2.internal, eni: eth0, ip: 10.0.1.23, labels: {app: web}}
  - {name: shop-a, node: ip-10-0-1-10.ec2.internal, eni: eth0, ip: 10.0.1.24, labels: {app: shop}}
  - {name: web-b, node: ip-10-0-2-20.ec2.internal, eni: eth0, ip: 10.0.2.57, labels: {app: web}}
  - {name: api-b, node: ip-10-0-2-20.ec2.internal, eni: eth0, ip: 10.0.2.58, labels: {app: api}}
  - {name: shop-b, node: ip-10-0-2-20.ec2.internal, eni: eth0, ip: 10.0.2.59, labels: {app: shop}}
services:
  - apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default, uid: 0b7c, resourceVersion: "812"}
    spec:
      type: ClusterIP
      clusterIP: 172.20.10.10
      clusterIPs: [172.20.10.10]
      ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
      selector: {app: web}
      sessionAffinity: None
      internalTrafficPolicy: Cluster
    status: {loadBalancer: {}}
  - apiVersion: v1
    kind: Service
    metadata: {name: api, namespace: default}
    spec:
      type: NodePort
      clusterIP: 172.20.20.20
      ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
      selector: {app: api}
  - apiVersion: v1
    kind: Service
    metadata: {name: shop, namespace: default}
    spec:
      type: LoadBalancer
      clusterIP: 172.20.30.30
      ports: [{name: https, port: 443, targetPort: 8443, nodePort: 31443}]
      selector: {app: shop}
      externalTrafficPolicy: Local
      healthCheckNodePort: 32000
    status:
      loadBalancer:
        ingress: [{hostname: k8s-default-shop-0123456789.elb.us-east-1.amazonaws.com}]
  - apiVersion: v1
    kind: Service
    metadata: {name: empty, namespace: default}
    spec:
      clusterIP: 172.20.40.40
      ports: [{name: http, port: 80}]
"""
"""kube-proxy.md §6.1 (nf_tables back end, as §6.3 was measured), Services pasted the way
`kubectl get svc -o yaml` prints them; EndpointSlices derived from the pods."""

REFERENCE_NODE_1 = "ip-10-0-1-10.ec2.internal"

OVERALL = """\
name: overall
region: us-east-1
kubernetes: {version: "1.31", serviceCidr: 172.30.0.0/16, serviceNodePortRange: "3000-32767"}
vpc:
  id: vpc-0000000000000000b
  cidrs: [192.168.0.0/16]
  subnets: [{name: a, az: us-east-1a, cidr: 192.168.0.0/24, routeTable: main}]
cni: {version: v1.19.2}
kubeProxy: {version: v1.31, clusterCIDR: 10.0.0.0/8}
nodeDefaults: {iptablesVersion: 1.6.1}
nodes:
  - name: test-node
    subnet: a
    enis:
      - {linux: eth0, ifindex: 2, id: eni-0c, device: 0, mac: "02:00:c0:a8:00:0a",
         primaryIp: 192.168.0.10}
services:
  - {name: svc1, namespace: ns1, clusterIP: 172.30.0.41, ports: [{name: p80, port: 80}]}
  - {name: svc2, namespace: ns2, type: LoadBalancer, externalTrafficPolicy: Local,
     clusterIP: 172.30.0.42, ports: [{name: p80, port: 80, nodePort: 3001}],
     externalIPs: [192.168.99.22], healthCheckNodePort: 30000,
     status: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}}
  - {name: svc3, namespace: ns3, type: NodePort, clusterIP: 172.30.0.43,
     ports: [{name: p80, port: 80, nodePort: 3003}]}
  - {name: svc4, namespace: ns4, type: NodePort, clusterIP: 172.30.0.44,
     externalIPs: [192.168.99.33], ports: [{name: p80, port: 80, targetPort: 80}]}
  - {name: svc5, namespace: ns5, type: LoadBalancer, externalTrafficPolicy: Cluster,
     clusterIP: 172.30.0.45, ports: [{name: p80, port: 80, nodePort: 3002}],
     loadBalancerSourceRanges: [" 203.0.113.0/25"],
     sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}},
     status: {loadBalancer: {ingress: [{ip: 5.6.7.8}]}}}
  - {name: svc6, namespace: ns6, clusterIP: 172.30.0.46, ports: [{name: p80, port: 80, targetPort: 80}]}
endpointSlices:
""" + "".join(
    f"""  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {{name: {svc}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {svc}}}}}
    addressType: IPv4
    endpoints: [{endpoints}]
    ports: [{{name: p80, port: 80, protocol: TCP}}]
"""
    for ns, svc, endpoints in (
        ("ns1", "svc1", "{addresses: [10.180.0.1]}"),
        ("ns2", "svc2", "{addresses: [10.180.0.2]}"),
        ("ns3", "svc3", "{addresses: [10.180.0.3]}"),
        (
            "ns4",
            "svc4",
            "{addresses: [10.180.0.4]}, {addresses: [10.180.0.5], nodeName: test-node}",
        ),
        ("ns5", "svc5", "{addresses: [10.180.0.3]}"),
    )
)
"""TestOverallIPTablesRules' Services and EndpointSlices (kube-proxy.md §9) with its proxier
settings: node `test-node`, ClusterCIDR detector 10.0.0.0/8, mark 0x4000, localhost NodePorts,
nfacct, no `--random-fully` (an iptables older than 1.6.2). Two differences the API server
forces: node ports need a `serviceNodePortRange` that holds 3001-3003, and svc5's
`healthCheckNodePort` is left out (the API server refuses one on an eTP=Cluster Service;
kube-proxy ignores it anyway, and the expected dump has no rule for it)."""

SHAPES = """\
name: shapes
region: us-east-1
kubernetes: {version: "1.31", serviceCidr: 10.96.0.0/16}
vpc:
  id: vpc-0000000000000000c
  cidrs: [10.0.0.0/16]
  subnets:
    - {name: a, az: us-east-1a, cidr: 10.0.1.0/24, routeTable: main}
    - {name: b, az: us-east-1b, cidr: 10.0.2.0/24, routeTable: main}
cni: {version: v1.19.2}
kubeProxy: {version: v1.35, clusterCIDR: 10.0.0.0/16}
nodeDefaults: {iptables: nft}
nodes:
  - name: node-a
    subnet: a
    enis:
      - {linux: eth0, ifindex: 2, id: eni-1a, device: 0, mac: "02:00:0a:00:01:0a",
         primaryIp: 10.0.1.10, secondaryIps: [10.0.1.21, 10.0.1.22, 10.0.1.23, 10.0.1.24]}
  - name: node-b
    subnet: b
    enis:
      - {linux: eth0, ifindex: 2, id: eni-1b, device: 0, mac: "02:00:0a:00:02:14",
         primaryIp: 10.0.2.20, secondaryIps: [10.0.2.31, 10.0.2.32, 10.0.2.33]}
pods:
  - {name: web-1, node: node-a, eni: eth0, ip: 10.0.1.21, labels: {app: web},
     ports: [{name: web, containerPort: 8080}, {name: dns, containerPort: 5353, protocol: UDP}]}
  - {name: web-2, node: node-b, eni: eth0, ip: 10.0.2.31, labels: {app: web},
     ports: [{name: web, containerPort: 8081}]}
  - {name: db-1, node: node-a, eni: eth0, ip: 10.0.1.22, labels: {app: db}, ready: false}
  - {name: old-1, node: node-a, eni: eth0, ip: 10.0.1.23, labels: {app: old}, terminating: true}
  - {name: old-2, node: node-b, eni: eth0, ip: 10.0.2.32, labels: {app: old}, terminating: true,
     ready: false}
  - {name: zonal-1, node: node-a, eni: eth0, ip: 10.0.1.24, labels: {app: zonal}}
  - {name: zonal-2, node: node-b, eni: eth0, ip: 10.0.2.33, labels: {app: zonal}}
services:
  - name: multi
    clusterIP: 10.96.0.10
    selector: {app: web}
    ports:
      - {name: http, port: 80, targetPort: web}
      - {name: dns, port: 53, protocol: UDP, targetPort: dns}
      - {name: assoc, port: 9000, protocol: SCTP, targetPort: 9000}
  - {name: np-local, type: NodePort, clusterIP: 10.96.0.11, externalTrafficPolicy: Local,
     selector: {app: web}, ports: [{port: 80, targetPort: 8080, nodePort: 30011}]}
  - name: lb-fw
    type: LoadBalancer
    clusterIP: 10.96.0.12
    selector: {app: web}
    ports: [{port: 443, targetPort: 8443, nodePort: 30012}]
    loadBalancerSourceRanges: [203.0.113.0/25, 10.0.1.0/24]
    sessionAffinity: ClientIP
    sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
    status: {loadBalancer: {ingress: [{ip: 198.51.100.7}, {ip: 198.51.100.8, ipMode: Proxy}]}}
  - name: lb-local
    type: LoadBalancer
    clusterIP: 10.96.0.13
    externalTrafficPolicy: Local
    healthCheckNodePort: 32013
    selector: {app: web}
    ports: [{port: 80, targetPort: 8080, nodePort: 30013}]
    status: {loadBalancer: {ingress: [{ip: 198.51.100.9}]}}
  - {name: ext-ip, clusterIP: 10.96.0.14, externalIPs: [198.51.100.20], selector: {app: web},
     ports: [{port: 8080}]}
  - {name: itp-local, clusterIP: 10.96.0.15, internalTrafficPolicy: Local, selector: {app: web},
     ports: [{port: 80, targetPort: 8080}]}
  - {name: no-eps, type: NodePort, clusterIP: 10.96.0.16, externalIPs: [198.51.100.21],
     selector: {app: nothing}, ports: [{port: 80, nodePort: 30016}]}
  - {name: not-ready, clusterIP: 10.96.0.17, selector: {app: db}, ports: [{port: 5432}]}
  - {name: terminating, clusterIP: 10.96.0.18, selector: {app: old}, ports: [{port: 80}]}
  - {name: zonal, clusterIP: 10.96.0.19, selector: {app: zonal}, trafficDistribution: PreferSameNode,
     ports: [{port: 80}]}
  - {name: headless, clusterIP: None, selector: {app: web}, ports: [{port: 80}]}
  - {name: elsewhere, type: ExternalName, externalName: db.example.com}
  - {name: manual, clusterIP: 10.96.0.20, ports: [{name: http, port: 80}]}
endpointSlices:
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: manual-x1, namespace: default, labels: {kubernetes.io/service-name: manual}}
    addressType: IPv4
    endpoints:
      - {addresses: [10.0.2.99], conditions: {ready: true}, nodeName: node-b, zone: us-east-1b}
      - {addresses: [10.0.1.99], conditions: {ready: false, serving: true, terminating: true},
         nodeName: node-a}
      - {addresses: [10.0.1.98], conditions: {ready: true}, nodeName: node-a}
    ports: [{name: http, port: 8080, protocol: TCP}]
variants:
  legacy: {nodeDefaults: {iptables: legacy}}
  interfaces: {kubeProxy: {detectLocalMode: InterfaceNamePrefix, detectLocal: {interfaceNamePrefix: eni}}}
  masquerade-all: {kubeProxy: {clusterCIDR: "", iptables: {masqueradeAll: true, localhostNodePorts: false}}}
"""
"""A cluster with every Service shape kube-proxy programs on the node side: several ports and
protocols with named target ports, NodePort and LoadBalancer with eTP Local (HCNP, no local
endpoint on one node), source ranges and ClientIP affinity, an `ipMode: Proxy` ingress, external
IPs, iTP Local, no endpoints, not-ready and terminating endpoints, PreferSameNode hints, headless
and ExternalName Services (skipped), a hand-written EndpointSlice; the ClusterCIDR detector (and
the interface-prefix detector and masqueradeAll as variants)."""
