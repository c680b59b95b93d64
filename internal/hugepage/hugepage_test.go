//go:build linux

package hugepage

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vma is one mapping of /proc/self/smaps.
type vma struct {
	start, end uintptr
	flags      []string
	anonHuge   int64 // AnonHugePages, bytes
}

func mappings(t *testing.T) []vma {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var out []vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		switch {
		case len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			lo, hi, _ := strings.Cut(fields[0], "-")
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("smaps line %q", line)
			}
			out = append(out, vma{start: uintptr(s), end: uintptr(e)})
		case len(out) > 0 && fields[0] == "VmFlags:":
			out[len(out)-1].flags = fields[1:]
		case len(out) > 0 && fields[0] == "AnonHugePages:":
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			out[len(out)-1].anonHuge = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// mappingOf returns the mapping that holds address p.
func mappingOf(t *testing.T, p uintptr) vma {
	t.Helper()
	for _, m := range mappings(t) {
		if m.start <= p && p < m.end {
			return m
		}
	}
	t.Fatalf("no mapping holds %#x", p)
	return vma{}
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func hasFlag(m vma, f string) bool {
	for _, g := range m.flags {
		if g == f {
			return true
		}
	}
	return false
}

func needTHP(t *testing.T) {
	t.Helper()
	if m := Mode(); m != "always" && m != "madvise" {
		t.Skipf("transparent huge pages are %q here", m)
	}
}

// TestMakeAdvises checks, in the kernel's own view of the process, that
// Make's buffers lie in memory marked for huge pages ("hg") and that,
// once written, huge pages back them.
func TestMakeAdvises(t *testing.T) {
	needTHP(t)
	SetEnabled(true)
	before := advisedBytes()
	var bufs [][]byte
	for range 8 {
		b := Make(1 << 20)
		if len(b) != 1<<20 || cap(b) != 1<<20 {
			t.Fatalf("len %d cap %d", len(b), cap(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("byte %d is %d, want a zeroed buffer", i, b[i])
			}
		}
		bufs = append(bufs, b)
	}
	big := Make(16 << 20) // spans whole 2 MiB pages whatever its alignment
	for i := range big {
		big[i] = byte(i)
	}
	for i, b := range append(bufs, big) {
		if m := mappingOf(t, addr(b)); !hasFlag(m, "hg") {
			t.Errorf("buffer %d at %#x: mapping %#x-%#x flags %v, want hg", i, addr(b), m.start, m.end, m.flags)
		}
	}
	if m := mappingOf(t, addr(big)); m.anonHuge == 0 {
		t.Errorf("16 MiB written in an advised mapping, yet no AnonHugePages in %#x-%#x", m.start, m.end)
	}
	if advisedBytes() <= before {
		t.Errorf("advisedBytes %d, was %d", advisedBytes(), before)
	}
	if !Enabled() {
		t.Error("Enabled() false")
	}
}

func TestSmallAndDisabled(t *testing.T) {
	defer SetEnabled(true)
	before := advisedBytes()
	if b := Make(MinSize - 1); len(b) != MinSize-1 || advisedBytes() != before {
		t.Errorf("small buffer: len %d, advised %d → %d", len(b), before, advisedBytes())
	}
	if c := Clone(nil); c == nil || len(c) != 0 {
		t.Errorf("Clone(nil) = %#v, want an empty non-nil slice", c)
	}
	SetEnabled(false)
	if Enabled() {
		t.Error("Enabled() after SetEnabled(false)")
	}
	src := make([]byte, 64<<20)
	for i := range src {
		src[i] = byte(i * 7)
	}
	c := Clone(src)
	if string(c) != string(src) {
		t.Fatal("Clone differs from its source")
	}
	if advisedBytes() != before {
		t.Errorf("advice off, yet advisedBytes %d → %d", before, advisedBytes())
	}
	// 64 MiB allocated with advice off: at least one of its 4 MiB chunks
	// is new to the heap, and its mapping must not be marked.
	for p := addr(c) &^ (chunkSize - 1); p < addr(c)+uintptr(len(c)); p += chunkSize {
		if _, ok := advised.Load(p); ok || p < addr(c) {
			continue
		}
		if m := mappingOf(t, p); hasFlag(m, "hg") {
			t.Errorf("chunk %#x, allocated with advice off, is in a mapping marked hg (%#x-%#x)", p, m.start, m.end)
		}
		return
	}
	t.Skip("every chunk of the buffer had been advised before")
}

func TestSelected(t *testing.T) {
	for in, want := range map[string]string{
		"always [madvise] never\n": "madvise",
		"[always] madvise never":   "always",
		"always madvise [never]":   "never",
		"":                         "",
		"] [":                      "",
	} {
		if got := selected([]byte(in)); got != want {
			t.Errorf("selected(%q) = %q, want %q", in, got, want)
		}
	}
}
