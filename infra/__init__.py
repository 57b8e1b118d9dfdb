"""herd's Pulumi program: the burst VPC and VPN, burst node pools, their join credential, and the cluster add-ons.

``infra/__main__.py`` wires it (what `pulumi up` runs); ``infra.config`` reads and validates the stack config;
``infra.plan`` is `herd-plan`, the offline plan under Pulumi's mocks. Nothing here is imported by ``ml_jobs``.
"""
