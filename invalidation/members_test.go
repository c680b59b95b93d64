package invalidation

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
)

// TestMemberEntryPeer: a daemon announces its peer address in its member
// entry, one without announces "", and an entry written before the field
// existed reads as "".
func TestMemberEntryPeer(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	oa := testOptions(t, srv.ClientURL(), "models")
	oa.PeerAddr = "127.0.0.1:7001"
	newDaemon(t, "a", oa)
	newDaemon(t, "b", testOptions(t, srv.ClientURL(), "models"))
	js := connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	testutil.CheckFor(t, 10*time.Second, func() error {
		ms, err := MembersIn(ctx, js, "models-members")
		if err != nil {
			return err
		}
		if len(ms) != 2 || ms[0].Node != "a" || ms[0].Peer != "127.0.0.1:7001" || ms[1].Node != "b" || ms[1].Peer != "" {
			return fmt.Errorf("members %+v", ms)
		}
		return nil
	})
	kv, err := js.KeyValue(ctx, "models-members")
	if err != nil {
		t.Fatal(err)
	}
	// The bucket leaves a marker where an entry expires, for watches.
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != oa.MemberTTL || st.LimitMarkerTTL() != oa.MemberTTL {
		t.Fatalf("members bucket TTL %v, marker TTL %v; want %v and %v", st.TTL(), st.LimitMarkerTTL(), oa.MemberTTL, oa.MemberTTL)
	}
	e, err := kv.Get(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if want := `"peer":""`; !strings.Contains(string(e.Value()), want) {
		t.Fatalf("b's entry %s lacks %s", e.Value(), want)
	}

	// An entry from a daemon that predates the field.
	if _, err := kv.Put(ctx, "old", []byte(`{"node":"old","applied":3,"nats_connected":true,"version":"0.9","time":"2025-01-02T03:04:05Z"}`)); err != nil {
		t.Fatal(err)
	}
	ms, err := MembersIn(ctx, js, "models-members")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[2].Node != "old" || ms[2].Peer != "" || ms[2].Applied != 3 {
		t.Fatalf("members with a legacy entry: %+v", ms)
	}
}

// TestCloseLeavesWithoutHandle: a daemon leaves the members bucket on
// Close even when its heartbeat has no bucket handle, as after a failed put
// (a put that failed may still have written the entry).
func TestCloseLeavesWithoutHandle(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	a := newDaemon(t, "a", testOptions(t, srv.ClientURL(), "models"))
	b := newDaemon(t, "b", testOptions(t, srv.ClientURL(), "models"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	members := func() ([]Member, error) { return a.c.Members(ctx) }
	testutil.CheckFor(t, 10*time.Second, func() error {
		if ms, err := members(); err != nil || len(ms) != 2 {
			return fmt.Errorf("members %+v, %v; want a and b", ms, err)
		}
		return nil
	})
	b.c.stopLoops()
	b.c.mu.Lock()
	b.c.mu.members = nil
	b.c.mu.Unlock()
	b.stop()
	// Well within MemberTTL: the entry was deleted, not left to expire.
	testutil.CheckFor(t, time.Second, func() error {
		if ms, err := members(); err != nil || len(ms) != 1 || ms[0].Node != "a" {
			return fmt.Errorf("members %+v, %v; want only a", ms, err)
		}
		return nil
	})
}
