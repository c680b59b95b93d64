package server

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/hugepage"
)

// TestInfoHugePages: INFO memory tells whether L1's large records get
// transparent huge pages, and how much of the process is in them; values
// SET through the server land in advised memory (the buffers they are read
// into become L1's records).
func TestInfoHugePages(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t, nil)
	ctx := context.Background()
	value := strings.Repeat("v", 2<<20)
	for i := range 8 {
		if err := c.Set(ctx, "huge:"+strconv.Itoa(i), value, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	state, _ := infoField(info, "huge_pages")
	mode, ok := infoField(info, "transparent_hugepage")
	if !ok || mode != hugepage.Mode() {
		t.Errorf("transparent_hugepage:%q, want %q", mode, hugepage.Mode())
	}
	v, _ := infoField(info, "used_memory_huge_pages")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("used_memory_huge_pages:%q", v)
	}
	switch mode {
	case "always", "madvise":
		if state != "yes" {
			t.Errorf("huge_pages:%q with transparent huge pages %s, want yes", state, mode)
		}
		if n == 0 {
			t.Errorf("16 MiB of values stored, yet used_memory_huge_pages:0")
		}
	default:
		if state != "unavailable" {
			t.Errorf("huge_pages:%q with transparent huge pages %q, want unavailable", state, mode)
		}
	}

	hugepage.SetEnabled(false)
	defer hugepage.SetEnabled(true)
	info, err = c.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	if state, _ := infoField(info, "huge_pages"); state != "no" {
		t.Errorf("huge_pages:%q once turned off, want no", state)
	}
}
