// Package v1alpha1 keeps the import path the NVIDIA device plugin v0.17.4 uses for NFD's v1alpha1 API, as aliases
// of the same API in NFD's own api/nfd module (see ../../../../README.md).
package v1alpha1

import nfd "sigs.k8s.io/node-feature-discovery/api/nfd/v1alpha1"

// NodeFeatureObjNodeNameLabel names the node a NodeFeature object belongs to.
const NodeFeatureObjNodeNameLabel = nfd.NodeFeatureObjNodeNameLabel

type (
	// NodeFeature is NFD's NodeFeature object.
	NodeFeature = nfd.NodeFeature
	// NodeFeatureSpec is its spec.
	NodeFeatureSpec = nfd.NodeFeatureSpec
	// Features is the features part of a spec.
	Features = nfd.Features
)

// NewFeatures returns an empty, initialised Features.
func NewFeatures() *Features { return nfd.NewFeatures() }
