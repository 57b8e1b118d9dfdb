// The import paths of sigs.k8s.io/node-feature-discovery v0.15.7 the NVIDIA device plugin v0.17.4 needs, from NFD
// v0.17.3 (README.md says why).
module sigs.k8s.io/node-feature-discovery

go 1.23.0

require (
	k8s.io/apimachinery v0.31.3
	k8s.io/client-go v0.31.3
	sigs.k8s.io/node-feature-discovery/api/nfd v0.17.3
)
