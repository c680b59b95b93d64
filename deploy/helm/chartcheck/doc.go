// Package chartcheck holds the acceptance test of the Helm chart in
// ../tiercache; it has no code of its own.
//
// It is a Go module of its own, so that Helm and the Kubernetes API types
// stay out of the daemon's module. Its test builds Helm from the Helm module
// pinned in go.mod (a tool dependency: `go tool helm` runs the same Helm)
// and tiercached from the repository's main module, then, for the default
// values and each values file under ../tiercache/ci:
//
//   - runs `helm lint --strict` and `helm template`;
//   - decodes every rendered object strictly (unknown fields are errors)
//     into its k8s.io/api type, or the Prometheus Operator's for the
//     ServiceMonitor;
//   - checks the DaemonSet: the socket directory is a hostPath mounted at
//     the same path and holds --socket, the probes GET /healthz on the
//     --metrics port, every flag and TIERCACHE_* variable is one that
//     `tiercached --help` lists, the rolling update replaces one pod at a
//     time without a surge;
//   - starts tiercached with the container's flags (paths and addresses
//     made local) and compares the memory bound it reports with the
//     container's memory request and limit.
//
// Run it with `go test ./...` in this directory; .ci/run does. The first
// run builds Helm, which takes minutes on two cores; later runs reuse the
// build cache.
package chartcheck
