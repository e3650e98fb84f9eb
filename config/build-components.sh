#!/bin/sh
# Writes the clusterctl release assets of the siteboot bootstrap provider:
#   OUT/bootstrap-components.yaml   kubectl kustomize config/default
#   OUT/metadata.yaml               config/metadata.yaml
#   OUT/cluster-template.yaml       config/clusterctl/cluster-template.yaml
#   OUT/cluster-template-edge.yaml  config/clusterctl/cluster-template-edge.yaml
# and the same files as a clusterctl local repository under
#   OUT/bootstrap-siteboot/VERSION/
#
# Usage: config/build-components.sh [OUT] (default OUT: out/ at the repository root;
# VERSION from $SITEBOOT_VERSION, default v0.1.0). Needs kubectl >= 1.27 (kustomize v5).
set -eu

config_dir=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$config_dir/../out"}
version=${SITEBOOT_VERSION:-v0.1.0}
repo="$out/bootstrap-siteboot/$version"

mkdir -p "$out" "$repo"
kubectl kustomize "$config_dir/default" > "$out/bootstrap-components.yaml.tmp"
mv "$out/bootstrap-components.yaml.tmp" "$out/bootstrap-components.yaml"
cp "$config_dir/metadata.yaml" "$out/metadata.yaml"
cp "$config_dir/clusterctl/cluster-template.yaml" "$config_dir/clusterctl/cluster-template-edge.yaml" "$out/"
cp "$out/bootstrap-components.yaml" "$out/metadata.yaml" "$out/cluster-template.yaml" "$out/cluster-template-edge.yaml" "$repo/"

echo "wrote $out/{bootstrap-components,metadata,cluster-template,cluster-template-edge}.yaml and $repo/"
