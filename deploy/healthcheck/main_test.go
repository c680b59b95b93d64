package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "http://127.0.0.1:9100/healthz"},
		{nil, map[string]string{"TIERCACHE_METRICS": ":9101"}, "http://127.0.0.1:9101/healthz"},
		{nil, map[string]string{"TIERCACHE_METRICS": "0.0.0.0:9102"}, "http://127.0.0.1:9102/healthz"},
		{nil, map[string]string{"TIERCACHE_METRICS": "[::]:9103"}, "http://127.0.0.1:9103/healthz"},
		{nil, map[string]string{"TIERCACHE_METRICS": "10.0.0.5:9100"}, "http://10.0.0.5:9100/healthz"},
		{nil, map[string]string{"TIERCACHE_METRICS": ":9100", "TIERCACHE_HEALTHCHECK_URL": "http://h:1/healthz"}, "http://h:1/healthz"},
		{[]string{"http://x:2/healthz"}, map[string]string{"TIERCACHE_HEALTHCHECK_URL": "http://h:1/healthz"}, "http://x:2/healthz"},
	} {
		got, err := target(tc.args, func(k string) string { return tc.env[k] })
		if err != nil || got != tc.want {
			t.Errorf("target(%q, %v) = %q, %v; want %q", tc.args, tc.env, got, err, tc.want)
		}
	}
	if _, err := target([]string{"a", "b"}, func(string) string { return "" }); err == nil {
		t.Error("two arguments accepted")
	}
	noPort := map[string]string{"TIERCACHE_METRICS": "nonsense"}
	if _, err := target(nil, func(k string) string { return noPort[k] }); err == nil {
		t.Error("a TIERCACHE_METRICS without a port accepted")
	}
}

func TestProbe(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if err := probe(srv.URL+"/healthz", time.Second); err != nil {
		t.Errorf("200: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := probe(srv.URL+"/healthz", time.Second); err == nil {
		t.Error("503 passed")
	}
	srv.Close()
	if err := probe(srv.URL+"/healthz", time.Second); err == nil {
		t.Error("a closed server passed")
	}
}
