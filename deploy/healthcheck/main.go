package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	url, err := target(os.Args[1:], os.Getenv)
	if err == nil {
		err = probe(url, 3*time.Second)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck: "+err.Error())
		os.Exit(1)
	}
}

// target is the URL to probe.
func target(args []string, getenv func(string) string) (string, error) {
	switch {
	case len(args) > 1:
		return "", fmt.Errorf("usage: healthcheck [URL]")
	case len(args) == 1:
		return args[0], nil
	case getenv("TIERCACHE_HEALTHCHECK_URL") != "":
		return getenv("TIERCACHE_HEALTHCHECK_URL"), nil
	}
	addr := getenv("TIERCACHE_METRICS")
	if addr == "" {
		addr = ":9100"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("TIERCACHE_METRICS %q: %v", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
