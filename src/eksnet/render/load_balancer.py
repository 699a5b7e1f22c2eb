"""`eksnet exec lb/NS/SVC -- describe` (and `ingress/NS/NAME`): a load balancer as the AWS CLI
shows it, JSON with the API's field names: for an NLB or ALB what `aws elbv2
describe-load-balancers`, `describe-listeners`, `describe-rules`, `describe-target-groups` and
`describe-target-health` return, one document; for a CLB what `aws elb
describe-load-balancers` returns. Target health is the data plane's answer to each health check
(`walk.engine.target_health`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from eksnet.dataplane.load_balancers import HealthCheck, LoadBalancer, TargetGroup
from eksnet.dataplane.state import DataplaneState
from eksnet.walk.engine import target_health

ARN = "arn:aws:elasticloadbalancing:{region}:{account}:{what}/{name}"


def describe(state: DataplaneState, balancer: LoadBalancer) -> str:
    """The JSON document, two-space indented, as the CLI prints it."""
    document = _clb(state, balancer) if balancer.kind == "clb" else _elbv2(state, balancer)
    return json.dumps(document, indent=4) + "\n"


def _arn(state: DataplaneState, what: str, name: str) -> str:
    vpc = state.vpc
    return ARN.format(region=vpc.region, account=vpc.account_id, what=what, name=name)


def _lb_arn(state: DataplaneState, balancer: LoadBalancer) -> str:
    kind = "net" if balancer.kind == "nlb" else "app"
    suffix = hashlib.sha256(balancer.dns_name.encode()).hexdigest()[:16]
    return _arn(state, "loadbalancer", f"{kind}/{balancer.name}/{suffix}")


def _check(check: HealthCheck) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "HealthCheckProtocol": check.protocol,
        "HealthCheckPort": check.port_text(),
        "HealthCheckEnabled": True,
        "HealthCheckIntervalSeconds": check.interval,
        "HealthyThresholdCount": check.healthy_threshold,
        "UnhealthyThresholdCount": check.unhealthy_threshold,
    }
    if check.timeout is not None:
        fields["HealthCheckTimeoutSeconds"] = check.timeout
    if check.path is not None:
        fields["HealthCheckPath"] = check.path
    if check.matcher is not None:
        fields["Matcher"] = {"HttpCode": check.matcher}
    return fields


def _group(state: DataplaneState, balancer: LoadBalancer, group: TargetGroup) -> dict[str, Any]:
    return {
        "TargetGroupArn": _arn(state, "targetgroup", group.name),
        "TargetGroupName": group.name,
        "Protocol": group.protocol,
        "Port": group.port,
        "VpcId": state.vpc.id,
        **_check(group.health_check),
        "LoadBalancerArns": [_lb_arn(state, balancer)],
        "TargetType": group.target_type,
    }


def _health(state: DataplaneState, balancer: LoadBalancer, group: TargetGroup) -> list[Any]:
    found = []
    for health in target_health(state, balancer, group):
        entry: dict[str, Any] = {
            "Target": {
                "Id": health.target.id,
                "Port": health.target.port,
                "AvailabilityZone": health.target.az,
            },
            "HealthCheckPort": str(group.health_check.port or health.target.port),
            "TargetHealth": {"State": "healthy" if health.healthy else "unhealthy"},
        }
        if not health.healthy:
            entry["TargetHealth"]["Reason"] = "Target.FailedHealthChecks"
            entry["TargetHealth"]["Description"] = health.reason
        found.append(entry)
    return found


def _elbv2(state: DataplaneState, balancer: LoadBalancer) -> dict[str, Any]:
    arn = _lb_arn(state, balancer)
    listeners = []
    rules: list[Any] = []
    for listener in balancer.listeners:
        listener_arn = arn.replace(":loadbalancer/", ":listener/") + f"/{listener.port}"
        default = listener.target_group
        action: dict[str, Any]
        if default is not None:
            group = balancer.target_group(default)
            action = {"Type": "forward", "TargetGroupArn": _arn(state, "targetgroup", group.name)}
        else:
            action = _rule_action(state, balancer, listener.rules[-1])
        listeners.append(
            {
                "ListenerArn": listener_arn,
                "LoadBalancerArn": arn,
                "Port": listener.port,
                "Protocol": listener.protocol,
                "DefaultActions": [action],
            }
        )
        for rule in listener.rules:
            conditions: list[Any] = []
            if rule.host is not None:
                conditions.append({"Field": "host-header", "Values": [rule.host]})
            if rule.paths:
                conditions.append({"Field": "path-pattern", "Values": list(rule.paths)})
            rules.append(
                {
                    "Priority": str(rule.priority) if rule.priority is not None else "default",
                    "Conditions": conditions,
                    "Actions": [_rule_action(state, balancer, rule)],
                    "IsDefault": rule.priority is None,
                }
            )
    return {
        "LoadBalancers": [
            {
                "LoadBalancerArn": arn,
                "DNSName": balancer.dns_name,
                "LoadBalancerName": balancer.name,
                "Scheme": balancer.scheme,
                "VpcId": state.vpc.id,
                "State": {"Code": "active"},
                "Type": "network" if balancer.kind == "nlb" else "application",
                "AvailabilityZones": [
                    {
                        "ZoneName": node.az,
                        "SubnetId": node.subnet,
                        "LoadBalancerAddresses": [
                            {
                                "IpAddress": str(node.public_ip or node.private_ip),
                                "PrivateIPv4Address": str(node.private_ip),
                            }
                        ],
                    }
                    for node in balancer.nodes
                ],
                "SecurityGroups": list(balancer.security_groups),
                "IpAddressType": "ipv4",
            }
        ],
        "Listeners": listeners,
        "Rules": rules,
        "TargetGroups": [_group(state, balancer, group) for group in balancer.target_groups],
        "TargetHealthDescriptions": {
            group.name: _health(state, balancer, group) for group in balancer.target_groups
        },
    }


def _rule_action(state: DataplaneState, balancer: LoadBalancer, rule: Any) -> dict[str, Any]:
    if rule.fixed_response is not None:
        return {
            "Type": "fixed-response",
            "FixedResponseConfig": {
                "StatusCode": str(rule.fixed_response),
                "ContentType": "text/plain",
            },
        }
    group = balancer.target_group(rule.target_group)
    return {"Type": "forward", "TargetGroupArn": _arn(state, "targetgroup", group.name)}


def _clb(state: DataplaneState, balancer: LoadBalancer) -> dict[str, Any]:
    group = balancer.target_groups[0]
    check = group.health_check
    target = f"{check.protocol}:{check.port or group.port}{check.path or ''}"
    return {
        "LoadBalancerDescriptions": [
            {
                "LoadBalancerName": balancer.name,
                "DNSName": balancer.dns_name,
                "ListenerDescriptions": [
                    {
                        "Listener": {
                            "Protocol": listener.protocol,
                            "LoadBalancerPort": listener.port,
                            "InstanceProtocol": listener.protocol,
                            "InstancePort": balancer.target_group(
                                listener.target_group or group.id
                            ).port,
                        },
                        "PolicyNames": [],
                    }
                    for listener in balancer.listeners
                ],
                "AvailabilityZones": [node.az for node in balancer.nodes],
                "Subnets": [node.subnet for node in balancer.nodes],
                "VPCId": state.vpc.id,
                "Instances": [{"InstanceId": target.id} for target in group.targets],
                "HealthCheck": {
                    "Target": target,
                    "Interval": check.interval,
                    "Timeout": check.timeout,
                    "UnhealthyThreshold": check.unhealthy_threshold,
                    "HealthyThreshold": check.healthy_threshold,
                },
                "SecurityGroups": list(balancer.security_groups),
                "Scheme": balancer.scheme,
            }
        ],
        "InstanceStates": [
            {
                "InstanceId": health.target.id,
                "State": "InService" if health.healthy else "OutOfService",
                "ReasonCode": "N/A" if health.healthy else "Instance",
                "Description": "N/A" if health.healthy else health.reason,
            }
            for health in target_health(state, balancer, group)
        ],
    }
