package tier_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/tier"
)

// TestInvalidError: every refused name, version and scope is an
// *InvalidError with its fields, matching its sentinel and no other, and
// its message is the one clients have always read.
func TestInvalidError(t *testing.T) {
	_, _, scopeErr := tier.ParseScope([]byte("{@v1}x"))
	long := strings.Repeat("v", tier.MaxTagLen+1)
	_, _, longScopeErr := tier.ParseScope([]byte("{clip@" + long + "}x"))
	for _, tc := range []struct {
		err               error
		sentinel          error
		what, name, error string
	}{
		{tier.ValidateModel(""), tier.ErrInvalidModel, "model name", "", "tier: invalid model name: empty"},
		{tier.ValidateModel("a{b"), tier.ErrInvalidModel, "model name", "a{b", `tier: invalid model name "a{b": it may not contain '{' or '}'`},
		{tier.ValidateVersion(""), tier.ErrInvalidVersion, "version", "", "tier: invalid version: empty"},
		{tier.ValidateVersion("v@1"), tier.ErrInvalidVersion, "version", "v@1", `tier: invalid version "v@1": it may not contain '@', '{' or '}'`},
		{tier.ValidateVersion(long), tier.ErrInvalidVersion, "version", long, fmt.Sprintf("tier: invalid version: longer than %d bytes", tier.MaxTagLen)},
		{scopeErr, tier.ErrBadScope, "key scope", "@v1", `tier: invalid key scope: empty model name in "@v1"`},
		{longScopeErr, tier.ErrBadScope, "key scope", "clip@" + long, fmt.Sprintf("tier: invalid key scope: version longer than %d bytes", tier.MaxTagLen)},
	} {
		var e *tier.InvalidError
		if !errors.As(tc.err, &e) {
			t.Errorf("%v: not an *InvalidError", tc.err)
			continue
		}
		if e.What != tc.what || e.Name != tc.name {
			t.Errorf("%.60v: What %q, Name %.20q; want %q, %.20q", tc.err, e.What, e.Name, tc.what, tc.name)
		}
		if e.Error() != tc.error || e.Message() != strings.TrimPrefix(tc.error, "tier: ") {
			t.Errorf("Error() = %.80q, Message() = %.80q; want %.80q", e.Error(), e.Message(), tc.error)
		}
		for _, s := range []error{tier.ErrInvalidModel, tier.ErrInvalidVersion, tier.ErrBadScope, tier.ErrTooLarge} {
			if got := errors.Is(tc.err, s); got != (s == tc.sentinel) {
				t.Errorf("errors.Is(%.60v, %v) = %v", tc.err, s, got)
			}
		}
		if wrapped := fmt.Errorf("context: %w", tc.err); !errors.Is(wrapped, tc.sentinel) || !errors.As(wrapped, &e) {
			t.Errorf("wrapped %.60v: not matched", tc.err)
		}
	}
}

// TestTooLargeError: a key or value longer than the disk tier takes is
// refused by every write with a *TooLargeError that says how long it is
// and how long it may be, and matches ErrTooLarge.
func TestTooLargeError(t *testing.T) {
	var l2 tier.Disk
	h := openHybrid(t, hcfg{diskMax: disktier.MinMaxBytes, wrapL2: func(d tier.Disk) tier.Disk { l2 = d; return d }})
	defer h.Close()
	_, maxRecord := l2.Limits()
	long := strings.Repeat("k", disktier.MaxKeyLen)
	for _, tc := range []struct {
		key, value string
		want       tier.TooLargeError
		msg        string
	}{
		{long, "v", tier.TooLargeError{What: "key", Size: len(long), Max: disktier.MaxKeyLen - 1},
			fmt.Sprintf("key too large: key of %d bytes (at most %d)", len(long), disktier.MaxKeyLen-1)},
		{"{clip}" + long, "v", tier.TooLargeError{What: "key", Size: len(long) + 6, Max: disktier.MaxKeyLen - 14},
			fmt.Sprintf("key too large: key of %d bytes (at most %d)", len(long)+6, disktier.MaxKeyLen-14)},
		{"k", strings.Repeat("x", maxRecord), tier.TooLargeError{What: "value", Size: maxRecord, Max: maxRecord - tier.HeaderSize},
			fmt.Sprintf("value too large: value of %d bytes (the disk tier takes at most %d)", maxRecord, maxRecord-tier.HeaderSize)},
	} {
		for name, set := range map[string]func() error{
			"SetValue": func() error { return h.SetValue([]byte(tc.key), []byte(tc.value), 0) },
			"SetWith": func() error {
				_, err := h.SetWith([]byte(tc.key), []byte(tc.value), tier.SetArgs{Cond: tier.IfAbsent})
				return err
			},
		} {
			err := set()
			var e *tier.TooLargeError
			if !errors.As(err, &e) || *e != tc.want || !errors.Is(err, tier.ErrTooLarge) {
				t.Errorf("%s(%.10q…, %d bytes) = %.100v, want %+v", name, tc.key, len(tc.value), err, tc.want)
				continue
			}
			if e.Message() != tc.msg || e.Error() != "tier: "+tc.msg {
				t.Errorf("%s: Message() %q, Error() %q; want %q", name, e.Message(), e.Error(), tc.msg)
			}
		}
	}
	if _, err := h.Get([]byte("k")); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("the refused value was stored: %v", err)
	}
}
