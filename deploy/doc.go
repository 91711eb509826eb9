// Package deploy holds no code: its folder holds the files OpenKES is
// deployed with, a hardened systemd unit (systemd/kes.service) and a
// container build file (container/Containerfile). Its tests verify the
// unit with systemd-analyze and run the container's build command, so
// that neither file rots. The Kubernetes manifests (kubernetes/) and the
// Helm chart (helm/kes/) are checked by helm lint, by helm template and
// by decoding every object strictly with the Kubernetes API types. The
// monitoring files (monitoring/) have their own tests.
package deploy
