package tier_test

import (
	"bytes"
	"testing"

	"github.com/tiercache/tiercache/tier"
)

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ p, want string }{
		{"a", "b"},
		{"mr", "ms"},
		{"a\xff", "b"},
		{"\x01\xfe\xff\xff", "\x01\xff"},
		{"\x00", "\x01"},
	} {
		p := []byte(c.p)
		got := tier.PrefixEnd(p)
		if string(got) != c.want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", c.p, got, c.want)
		}
		if string(p) != c.p {
			t.Errorf("PrefixEnd(%q) modified its argument to %q", c.p, p)
		}
		if k := append(bytes.Clone(p), 0xff, 0xff); bytes.Compare(k, got) >= 0 {
			t.Errorf("PrefixEnd(%q) = %q is not above %q", c.p, got, k)
		}
	}
	for _, p := range []string{"", "\xff", "\xff\xff"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PrefixEnd(%q) did not panic", p)
				}
			}()
			tier.PrefixEnd([]byte(p))
		}()
	}
}
