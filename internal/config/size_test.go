package config

import (
	"errors"
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  error
	}{
		{"100", 100, nil},
		{"0", 0, nil},
		{"100B", 100, nil},
		{"100b", 100, nil},
		{"64KB", 64_000, nil},
		{"64kb", 64_000, nil},
		{"64KiB", 64 << 10, nil},
		{"512MiB", 512 << 20, nil},
		{"512mib", 512 << 20, nil},
		{"512MIB", 512 << 20, nil},
		{"2GiB", 2 << 30, nil},
		{"1.5GB", 1_500_000_000, nil},
		{"1.5GiB", 3 << 29, nil},
		{"1.1GB", 1_100_000_000, nil}, // exact, where float64 is not
		{"3TiB", 3 << 40, nil},
		{"2TB", 2e12, nil},
		{"1.5KiB", 1536, nil},
		{" 8 MiB ", 8 << 20, nil},
		{"007", 7, nil},
		{"9223372036854775807", math.MaxInt64, nil},
		{"8388607TiB", 8388607 << 40, nil},

		{"", 0, ErrSizeSyntax},
		{"MiB", 0, ErrSizeSyntax},
		{"abc", 0, ErrSizeSyntax},
		{"1.", 0, ErrSizeSyntax},
		{".5GiB", 0, ErrSizeSyntax},
		{"1.2.3MB", 0, ErrSizeSyntax},
		{"+5", 0, ErrSizeSyntax},
		{"1e9", 0, ErrSizeSyntax},
		{"0x10", 0, ErrSizeSyntax},
		{"5 M i B", 0, ErrSizeSyntax},
		{"12MiB!", 0, ErrSizeSyntax},
		{"12XB", 0, ErrSizeUnit},
		{"1G", 0, ErrSizeUnit},
		{"1k", 0, ErrSizeUnit},
		{"1PiB", 0, ErrSizeUnit},
		{"-1", 0, ErrSizeRange},
		{"-1GiB", 0, ErrSizeRange},
		{"1.5", 0, ErrSizeRange},
		{"0.3KiB", 0, ErrSizeRange},
		{"9223372036854775808", 0, ErrSizeRange},
		{"8388608TiB", 0, ErrSizeRange},
		{"99999999999999999999999999TB", 0, ErrSizeRange},
	} {
		got, err := ParseSize(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseSize(%q) = %d, %v; want error %v", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSizeUnitMessage(t *testing.T) {
	_, err := ParseSize("12XB")
	if want := `unknown size unit "XB" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`; err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1 << 30, "1GiB"},
		{3 << 29, "1536MiB"},
		{1_500_000_000, "1500MB"},
		{10 << 30, "10GiB"},
		{1_000_001, "1000001"},
		{math.MaxInt64, "9223372036854775807"},
	} {
		if got := FormatSize(tc.n); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
		if back, err := ParseSize(FormatSize(tc.n)); err != nil || back != tc.n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", tc.n, back, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512MiB", "1.5GB", "100", "-1", "12XB", "0.3KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("round trip of %q: %d → %q → %d, %v", s, n, FormatSize(n), back, err)
		}
	})
}
