package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/peer"
)

// fleetNode is a daemon of a test fleet: its node id, socket and data
// directory survive a restart.
type fleetNode struct {
	*node
	id    string
	args  []string
	peerA string // the peer address it announced
}

// startFleetNode starts daemon id of a fleet on the NATS server at url,
// serving peers on a free loopback port.
func startFleetNode(t *testing.T, url, id string, extra ...string) *fleetNode {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{
		"--nats", url, "--node-id", id, "--peer-listen", "127.0.0.1:0",
		"--socket", filepath.Join(dir, "tc.sock"), "--data-dir", filepath.Join(dir, "data"),
	}, extra...)
	f := &fleetNode{id: id, args: args}
	f.start(t)
	return f
}

func (f *fleetNode) start(t *testing.T) {
	t.Helper()
	f.node = startNode(t, nil, f.args...)
	f.peerA, _ = f.ready["peer_advertise"].(string)
	if f.peerA == "" {
		t.Fatalf("%s: the ready line has no peer_advertise: %v", f.id, f.ready)
	}
}

// peersInfo returns the daemon's INFO "# Peers" fields.
func peersInfo(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	return infoSection(t, c, "peers")
}

// infoSection returns the fields of the daemon's INFO section.
func infoSection(t *testing.T, c *redis.Client, section string) map[string]string {
	t.Helper()
	info, err := c.Info(ctxT(t), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

func peerCount(t *testing.T, c *redis.Client, field string) int {
	t.Helper()
	n, _ := strconv.Atoi(peersInfo(t, c)[field])
	return n
}

// waitPeers waits until c sees live peers.
func waitPeers(t *testing.T, c *redis.Client, live int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d live peers", live), func() bool {
		p := peersInfo(t, c)
		return p["peers"] == strconv.Itoa(live) && p["peers_live"] == strconv.Itoa(live)
	})
}

// testRing is the ring of owners of daemons ids: ownership hashes node ids
// only, so the test computes it as the daemons do.
func testRing(ids ...string) *peer.Ring {
	ms := make([]peer.Member, len(ids))
	for i, id := range ids {
		ms[i] = peer.Member{ID: id, Addr: "unused:1"}
	}
	return peer.NewRing(ms)
}

// ownedBy returns a key made of prefix that ring gives to id.
func ownedBy(t *testing.T, ring *peer.Ring, id, prefix string) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("%s:%d", prefix, i)
		if m, _ := ring.Owner([]byte(k)); m.ID == id {
			return k
		}
	}
	t.Fatalf("no key of %s", id)
	return ""
}

func mustSetKey(t *testing.T, c *redis.Client, k, v string) {
	t.Helper()
	if err := c.Set(ctxT(t), k, v, 0).Err(); err != nil {
		t.Fatalf("SET %s: %v", k, err)
	}
}

func wantGet(t *testing.T, c *redis.Client, who, k, want string) {
	t.Helper()
	got, err := c.Get(ctxT(t), k).Result()
	switch {
	case want == "" && errors.Is(err, redis.Nil):
	case want == "":
		t.Fatalf("GET %s on %s = %q, %v: want nil", k, who, got, err)
	case err != nil || got != want:
		t.Fatalf("GET %s on %s = %q, %v: want %q", k, who, got, err, want)
	}
}

// TestFleet runs three daemons on one NATS server as a fleet cache: what
// one stores, the others serve; MGET mixes local, peer and missing keys;
// keys follow their owner out and back; a frozen owner costs one
// --peer-timeout; the peer port refuses a connection without the password.
func TestFleet(t *testing.T) {
	top := t // daemons restarted in a subtest live as long as the test
	ns := natstest.RunServer(t, nil)
	const timeout = 200 * time.Millisecond
	extra := []string{"--peer-password", "fleet-secret", "--peer-timeout", timeout.String()}
	nodes := map[string]*fleetNode{}
	clients := map[string]*redis.Client{}
	for _, id := range []string{"a", "b", "c"} {
		nodes[id] = startFleetNode(t, ns.ClientURL(), id, extra...)
	}
	for id, n := range nodes {
		clients[id] = n.client(t, "")
	}
	for _, c := range clients {
		waitPeers(t, c, 2)
	}
	ring := testRing("a", "b", "c")
	a, b, c := clients["a"], clients["b"], clients["c"]

	t.Run("set on one, hit on the others", func(t *testing.T) {
		own := ownedBy(t, ring, "a", "own")
		fwd := ownedBy(t, ring, "b", "fwd") // set on a, forwarded to b
		mustSetKey(t, a, own, "v-own")
		mustSetKey(t, a, fwd, "v-fwd")
		wantGet(t, b, "b", own, "v-own")
		wantGet(t, c, "c", own, "v-own")
		waitFor(t, 10*time.Second, "the forwarded SET", func() bool { return peerCount(t, a, "peer_sets_forwarded") >= 1 })
		wantGet(t, c, "c", fwd, "v-fwd") // from b, its owner
		if n := peerCount(t, c, "peer_hits"); n != 2 {
			t.Fatalf("c counts %d peer hits, want 2", n)
		}
		if n, err := c.Exists(ctxT(t), ownedBy(t, ring, "a", "own")).Result(); err != nil || n != 1 {
			t.Fatalf("EXISTS on c = %d, %v", n, err)
		}
	})

	t.Run("MGET mixes local, peer and missing keys", func(t *testing.T) {
		local := ownedBy(t, ring, "b", "mlocal")
		remote := ownedBy(t, ring, "c", "mremote")
		missing := ownedBy(t, ring, "a", "mmissing")
		mustSetKey(t, b, local, "L")
		mustSetKey(t, c, remote, "R")
		got, err := b.MGet(ctxT(t), local, remote, missing).Result()
		if err != nil || len(got) != 3 || got[0] != "L" || got[1] != "R" || got[2] != nil {
			t.Fatalf("MGET on b = %v, %v: want [L R nil]", got, err)
		}
	})

	t.Run("keys follow their owner out and back", func(t *testing.T) {
		k := ownedBy(t, ring, "a", "moving")
		mustSetKey(t, a, k, "kept in a's L2")
		nodes["a"].stop()
		waitPeers(t, b, 1)
		wantGet(t, b, "b", k, "") // a miss, not an error
		nodes["a"].start(top)
		clients["a"] = nodes["a"].client(top, "")
		waitPeers(t, b, 2)
		wantGet(t, b, "b", k, "kept in a's L2")
	})

	t.Run("a frozen owner costs one timeout", func(t *testing.T) {
		var keys []string
		for i := range 11 {
			k := ownedBy(t, ring, "c", fmt.Sprintf("frozen%d", i))
			mustSetKey(t, c, k, "v")
			keys = append(keys, k)
		}
		nodes["c"].Freeze()
		defer nodes["c"].Signal(syscall.SIGCONT)
		start := time.Now()
		wantGet(t, b, "b", keys[0], "")
		first := time.Since(start)
		var slowest time.Duration
		for _, k := range keys[1:] {
			start := time.Now()
			wantGet(t, b, "b", k, "")
			slowest = max(slowest, time.Since(start))
		}
		t.Logf("--peer-timeout %v: first GET %v, slowest of the next 10 %v", timeout, first, slowest)
		if first < timeout/2 || slowest >= timeout {
			t.Fatalf("first GET %v, slowest of the next 10 %v: want about one timeout (%v), then fast", first, slowest, timeout)
		}
		if n := peerCount(t, b, "peer_timeouts"); n < 1 {
			t.Fatalf("b counts %d peer timeouts", n)
		}
		nodes["c"].Signal(syscall.SIGCONT)
		waitPeers(t, b, 2)
		wantGet(t, b, "b", keys[0], "v")
	})

	t.Run("a stopping daemon's writes reach their owner or its own disk", func(t *testing.T) {
		// Owner up: b, stopped right after the writes (pipelined, more
		// than it sends in the time it takes to stop), sends them to a
		// before it exits; only if a failed meanwhile (a loaded machine:
		// the breaker opens after a second without an answer) are some
		// of them on b's disk instead.
		var sent, kept []string
		for i := range 48 {
			sent = append(sent, ownedBy(t, ring, "a", fmt.Sprintf("sent%d", i)))
		}
		for i := range 20 {
			kept = append(kept, ownedBy(t, ring, "a", fmt.Sprintf("kept%d", i)))
		}
		big := strings.Repeat("b", 64<<10)
		bulk := redis.NewClient(&redis.Options{
			Network: "unix", Addr: nodes["b"].socket, Protocol: 2, MaxRetries: -1,
			ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		})
		defer bulk.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pipe := bulk.Pipeline()
		for _, k := range sent {
			pipe.Set(ctx, k, big, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		bulk.Close()
		nodes["b"].stop()
		aFailed := false
		for _, l := range nodes["b"].LogLines() {
			if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "peer failed") && l["peer"] == "a" {
				aFailed = true
			}
		}
		var onB []string
		for _, k := range sent {
			got, err := clients["a"].Get(ctxT(t), k).Result()
			switch {
			case err == nil && got == big:
			case errors.Is(err, redis.Nil) && aFailed:
				onB = append(onB, k)
			default:
				t.Fatalf("GET %s on a = %d bytes, %v; want the %d written on b before it stopped", k, len(got), err, len(big))
			}
		}

		// Owner frozen: the writes b could not send are on b's disk.
		nodes["b"].start(top)
		clients["b"] = nodes["b"].client(top, "")
		if len(onB) > 0 {
			t.Logf("a failed while b stopped: %d of %d writes stayed on b", len(onB), len(sent))
		}
		for _, k := range onB {
			if got, err := clients["b"].Get(ctxT(t), k).Result(); err != nil || got != big {
				t.Fatalf("GET %s on b = %d bytes, %v; want the %d b could not send a", k, len(got), err, len(big))
			}
		}
		waitPeers(t, clients["b"], 2)
		nodes["a"].Freeze()
		defer nodes["a"].Signal(syscall.SIGCONT)
		for _, k := range kept {
			mustSetKey(t, clients["b"], k, "kept by b")
		}
		if n := peerCount(t, clients["b"], "peer_sets_near"); n != len(kept) {
			t.Fatalf("b stored %d near copies, want %d (a frozen is still a live member)", n, len(kept))
		}
		nodes["b"].stop()
		nodes["b"].start(top)
		clients["b"] = nodes["b"].client(top, "")
		for _, k := range kept {
			wantGet(t, clients["b"], "b", k, "kept by b")
		}
		nodes["a"].Signal(syscall.SIGCONT)
		waitPeers(t, clients["b"], 2)
	})

	t.Run("the peer port refuses a connection without the password", func(t *testing.T) {
		before := peerCount(t, c, "peer_auth_failures")
		nc, err := net.DialTimeout("tcp", nodes["c"].peerA, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")); err != nil {
			t.Fatal(err)
		}
		reply, err := io.ReadAll(nc) // the error reply, then the end of the connection
		if err != nil || !strings.Contains(string(reply), "authentication required") {
			t.Fatalf("reply %q, %v: want an authentication error and the connection closed", reply, err)
		}
		if n := peerCount(t, c, "peer_auth_failures"); n != before+1 {
			t.Fatalf("c counts %d auth failures, want %d", n, before+1)
		}
	})
}

// TestFleetTLS: two daemons that speak mutual TLS to each other, with no
// password, serve each other's keys.
func TestFleetTLS(t *testing.T) {
	ns := natstest.RunServer(t, nil)
	cert, key, ca := writeTLSFiles(t)
	extra := []string{"--peer-tls-cert", cert, "--peer-tls-key", key, "--peer-tls-ca", ca}
	a := startFleetNode(t, ns.ClientURL(), "a", extra...)
	b := startFleetNode(t, ns.ClientURL(), "b", extra...)
	ca1, cb := a.client(t, ""), b.client(t, "")
	waitPeers(t, ca1, 1)
	waitPeers(t, cb, 1)
	ring := testRing("a", "b")
	k := ownedBy(t, ring, "a", "tls")
	mustSetKey(t, ca1, k, "over TLS")
	wantGet(t, cb, "b", k, "over TLS")
	if n := peerCount(t, cb, "peer_hits"); n != 1 {
		t.Fatalf("b counts %d peer hits, want 1", n)
	}
}

// writeTLSFiles writes a CA and a certificate it signed for 127.0.0.1,
// used by both daemons as server and client, and returns their files.
func writeTLSFiles(t *testing.T) (cert, key, ca string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "tiercached"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caTmpl, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

// TestFleetMemoryBound: a fleet member's memory bound counts its peer
// server's requests and connection buffers and its queue of forwarded
// writes: --max-value + 256 KiB + 16 MiB, 1024 × 128 KiB and 64 MiB.
func TestFleetMemoryBound(t *testing.T) {
	ns := natstest.RunServer(t, nil)
	for _, maxValue := range []int64{64 << 20, 8 << 20} {
		mv := fmt.Sprintf("--max-value=%d", maxValue)
		alone := startNode(t, nil, "--nats", ns.ClientURL(), "--node-id", "alone", mv)
		member := startFleetNode(t, ns.ClientURL(), "member", mv)
		bound := func(n *node) int64 {
			v, err := strconv.ParseInt(infoSection(t, n.client(t, ""), "memory")["memory_bound"], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		want := maxValue + 256<<10 + 16<<20 + 1024*128<<10 + 64<<20
		if got := bound(member.node) - bound(alone); got != want {
			t.Errorf("--max-value %d: a fleet member's bound is %d bytes over a lone daemon's, want %d", maxValue, got, want)
		}
		alone.stop()
		member.stop()
	}
}
