"""The burst VPC: private subnets across AZs behind NAT, the nodes' security group, and the VPN to on-prem.

Burst nodes live only in private subnets. They reach the on-prem control plane, nodes and NAS over a site-to-site
IPsec VPN (static routes to the on-prem CIDRs, no BGP needed on the router), and the internet (packages, images)
through NAT. Nothing is reachable from the internet: the security group admits traffic only from the VPC and the
on-prem ranges, SSH only from on-prem.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import BGP_ASN_MAX, StackConfig

__all__ = ["NODE_INGRESS", "Network", "NodePort", "customer_gateway_asn", "tunnel_arguments"]


@dataclass(frozen=True)
class NodePort:
    """One ingress rule of the burst nodes' security group."""

    protocol: str
    from_port: int
    to_port: int
    why: str
    onprem_only: bool = False


# What must reach a burst node, and from where. Everything else is refused; egress is open (the nodes initiate
# connections to the API server, registries and the NAS).
NODE_INGRESS: tuple[NodePort, ...] = (
    NodePort("tcp", 10250, 10250, "kubelet API: logs, exec, metrics from the control plane"),
    NodePort("udp", 4789, 4789, "Calico VXLAN between nodes on both sides of the VPN"),
    NodePort("tcp", 5473, 5473, "Calico Typha, when the operator runs it"),
    NodePort("icmp", -1, -1, "path-MTU discovery across the tunnel (fragmentation-needed)"),
    NodePort("tcp", 22, 22, "SSH for the operator, from on-prem only", onprem_only=True),
)


def customer_gateway_asn(asn: int) -> dict[str, str]:
    """The customer gateway's ASN argument: ``bgp_asn`` up to 2147483647, ``bgp_asn_extended`` above (AWS keeps
    4-byte ASNs such as the private 4200000000-4294967294 in a field of their own)."""
    return {"bgp_asn": str(asn)} if asn <= BGP_ASN_MAX else {"bgp_asn_extended": str(asn)}


def tunnel_arguments(cfg: StackConfig) -> dict[str, list]:
    """The IPsec options of both tunnels as VpnConnection arguments: each field of herd:vpnTunnelOptions
    (``phase1_dh_group_numbers``) becomes ``tunnel1_<field>`` and ``tunnel2_<field>``."""
    options = cfg.vpn_tunnel_options.model_dump()
    return {f"tunnel{n}_{field}": list(values) for n in (1, 2) for field, values in options.items()}


class Network(pulumi.ComponentResource):
    """VPC, subnets, NAT, VPN and the node security group.

    Attributes:
        vpc_id: the VPC.
        private_subnet_ids: one private subnet per AZ, where burst nodes run.
        node_security_group_id: the security group every burst node gets.
        vpn_connection: the site-to-site VPN connection (its tunnel details are exported as secrets).
    """

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("herd:network:Network", name, None, opts)
        tags = {"herd.dev/cluster": cfg.cluster_name}
        zones = _zones(self, cfg)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cfg.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{cfg.cluster_name}-burst"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # VPN first: the private route tables send on-prem traffic to its gateway.
        self.vpn_gateway, self.vpn_connection = _vpn(self, name, cfg, self.vpc, tags)
        self.private_subnets = _subnets(
            self, name, cfg, self.vpc, vpn_gateway=self.vpn_gateway, zones=zones, tags=tags
        )
        self.node_security_group = _node_security_group(self, name, cfg, self.vpc, tags)

        self.vpc_id = self.vpc.id
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.node_security_group_id = self.node_security_group.id
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "privateSubnetIds": self.private_subnet_ids,
                "nodeSecurityGroupId": self.node_security_group_id,
            }
        )

    def router_settings(self) -> pulumi.Output[dict]:
        """What the on-prem router needs for both tunnels, as one secret (it holds the pre-shared keys)."""
        c = self.vpn_connection
        return pulumi.Output.secret(
            pulumi.Output.all(
                c.tunnel1_address,
                c.tunnel1_preshared_key,
                c.tunnel1_cgw_inside_address,
                c.tunnel1_vgw_inside_address,
                c.tunnel2_address,
                c.tunnel2_preshared_key,
                c.tunnel2_cgw_inside_address,
                c.tunnel2_vgw_inside_address,
                self.vpc.cidr_block,
            ).apply(
                lambda v: {
                    "tunnels": [
                        {"outsideAddress": v[0], "presharedKey": v[1], "insideCustomer": v[2], "insideAws": v[3]},
                        {"outsideAddress": v[4], "presharedKey": v[5], "insideCustomer": v[6], "insideAws": v[7]},
                    ],
                    "routeToAws": v[8],
                }
            )
        )


def _zones(parent: pulumi.Resource, cfg: StackConfig) -> list[str]:
    """The first herd:availabilityZones zones the account sees in the region (config checked the region has them;
    an account may see fewer, and then this stops `pulumi up` with one line)."""
    names = aws.get_availability_zones(state="available", opts=pulumi.InvokeOptions(parent=parent)).names
    if len(names) < cfg.availability_zones:
        raise pulumi.RunError(
            f"herd:availabilityZones: {cfg.availability_zones}, but this account sees {len(names)} available "
            f"zones in {cfg.aws_region}"
        )
    return list(names[: cfg.availability_zones])


def _vpn(
    parent: pulumi.Resource, name: str, cfg: StackConfig, vpc: aws.ec2.Vpc, tags: dict[str, str]
) -> tuple[aws.ec2.VpnGateway, aws.ec2.VpnConnection]:
    """The VPN gateway, the on-prem router as customer gateway, and the IPsec connection with a static route to
    every on-prem range."""
    child = pulumi.ResourceOptions(parent=parent)
    gateway = aws.ec2.VpnGateway(
        f"{name}-vgw", vpc_id=vpc.id, tags={**tags, "Name": f"{cfg.cluster_name}-vgw"}, opts=child
    )
    customer_gateway = aws.ec2.CustomerGateway(
        f"{name}-onprem-router",
        **customer_gateway_asn(cfg.onprem_bgp_asn),
        ip_address=cfg.onprem_vpn_public_ip,
        type="ipsec.1",
        tags={**tags, "Name": f"{cfg.cluster_name}-onprem"},
        opts=child,
    )
    connection = aws.ec2.VpnConnection(
        f"{name}-vpn",
        customer_gateway_id=customer_gateway.id,
        vpn_gateway_id=gateway.id,
        type="ipsec.1",
        static_routes_only=True,
        **tunnel_arguments(cfg),
        tags={**tags, "Name": f"{cfg.cluster_name}-onprem"},
        opts=child,
    )
    for i, cidr in enumerate(cfg.onprem_cidrs):
        aws.ec2.VpnConnectionRoute(
            f"{name}-vpn-route-{i}", vpn_connection_id=connection.id, destination_cidr_block=cidr, opts=child
        )
    return gateway, connection


def _subnets(
    parent: pulumi.Resource,
    name: str,
    cfg: StackConfig,
    vpc: aws.ec2.Vpc,
    *,
    vpn_gateway: aws.ec2.VpnGateway,
    zones: list[str],
    tags: dict[str, str],
) -> list[aws.ec2.Subnet]:
    """A public (NAT) and a private (nodes) subnet per zone; NAT once or per zone; the private route tables send
    the on-prem ranges to the VPN and the rest to NAT. Returns the private subnets."""
    child = pulumi.ResourceOptions(parent=parent)
    vpc_net = ipaddress.ip_network(cfg.vpc_cidr)
    # Private (node) subnets take the first /20s of a /16 (scaled with the VPC); public (NAT) ones the last.
    private_nets = list(vpc_net.subnets(new_prefix=vpc_net.prefixlen + 4))[: len(zones)]
    public_nets = list(vpc_net.subnets(new_prefix=vpc_net.prefixlen + 8))[-len(zones) :]
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
    public_rt = aws.ec2.RouteTable(
        f"{name}-public",
        vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
        tags={**tags, "Name": f"{cfg.cluster_name}-public"},
        opts=child,
    )
    nat_ids: list[pulumi.Output[str]] = []
    private_subnets: list[aws.ec2.Subnet] = []
    for i, az in enumerate(zones):
        public = aws.ec2.Subnet(
            f"{name}-public-{i}",
            vpc_id=vpc.id,
            cidr_block=str(public_nets[i]),
            availability_zone=az,
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{cfg.cluster_name}-public-{az}"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
        )
        if i == 0 or cfg.nat_per_az:
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public.id, tags=tags, opts=child
            )
            nat_ids.append(nat.id)
        private = aws.ec2.Subnet(
            f"{name}-private-{i}",
            vpc_id=vpc.id,
            cidr_block=str(private_nets[i]),
            availability_zone=az,
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{cfg.cluster_name}-private-{az}"},
            opts=child,
        )
        private_rt = aws.ec2.RouteTable(
            f"{name}-private-{i}",
            vpc_id=vpc.id,
            routes=[
                aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[-1]),
                *(
                    aws.ec2.RouteTableRouteArgs(cidr_block=cidr, gateway_id=vpn_gateway.id)
                    for cidr in cfg.onprem_cidrs
                ),
            ],
            tags={**tags, "Name": f"{cfg.cluster_name}-private-{az}"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private-{i}", subnet_id=private.id, route_table_id=private_rt.id, opts=child
        )
        private_subnets.append(private)
    return private_subnets


def _node_security_group(
    parent: pulumi.Resource, name: str, cfg: StackConfig, vpc: aws.ec2.Vpc, tags: dict[str, str]
) -> aws.ec2.SecurityGroup:
    """NODE_INGRESS from the VPC and on-prem ranges (SSH from on-prem only); all egress."""
    internal = [cfg.vpc_cidr, *cfg.onprem_cidrs]
    return aws.ec2.SecurityGroup(
        f"{name}-nodes",
        vpc_id=vpc.id,
        description=f"herd burst nodes of {cfg.cluster_name}: cluster traffic from the VPC and on-prem only",
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol=rule.protocol,
                from_port=rule.from_port,
                to_port=rule.to_port,
                cidr_blocks=list(cfg.onprem_cidrs) if rule.onprem_only else internal,
                description=rule.why,
            )
            for rule in NODE_INGRESS
        ],
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"], description="all outbound"
            )
        ],
        tags={**tags, "Name": f"{cfg.cluster_name}-nodes"},
        opts=pulumi.ResourceOptions(parent=parent),
    )
