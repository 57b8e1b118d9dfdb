"""In-cluster add-ons that make the cluster an ML cluster: CNI, GPU scheduling, results storage, autoscaling,
team namespaces with quotas and limits, priority classes. Each module owns one; charts are pinned in
:mod:`infra.addons.charts`."""
