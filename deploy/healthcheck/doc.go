// Command healthcheck is the container health probe: it GETs a daemon's
// /healthz and exits 0 on 200, 1 otherwise (503 while shutting down, no
// answer, or a timeout). It is a static binary so that it runs in a
// distroless image, which has no shell, curl or wget.
//
//	healthcheck                                # http://127.0.0.1:9100/healthz
//	healthcheck http://127.0.0.1:9101/healthz
//
// With no argument the URL comes from TIERCACHE_HEALTHCHECK_URL, else it is
// built from TIERCACHE_METRICS (the daemon's --metrics address, a host of
// 0.0.0.0 or none meaning 127.0.0.1), else port 9100.
package main
