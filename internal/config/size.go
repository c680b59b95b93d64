package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Errors of ParseSize, wrapped with the detail; check them with errors.Is.
var (
	// ErrSizeSyntax is returned for text that is not a number with an
	// optional unit.
	ErrSizeSyntax = errors.New("not a size (want e.g. 512MiB, 2GiB, 1.5GB or 100)")
	// ErrSizeUnit is returned for an unknown unit, such as "XB" or "K".
	ErrSizeUnit = errors.New("unknown size unit")
	// ErrSizeRange is returned for a size that is negative, not a whole
	// number of bytes, or larger than an int64 holds.
	ErrSizeRange = errors.New("size out of range")
)

// sizeUnits maps each unit, in lower case, to its number of bytes. Binary
// units (KiB…) are powers of 1024 and decimal ones (KB…) powers of 1000, as
// IEC 80000-13 defines them. Single letters ("1G") are not accepted: Redis
// reads "1g" as 10⁹ and "1gb" as 2³⁰, and guessing which one was meant is
// worse than asking.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseSize parses a byte size: a decimal number, optionally with a
// fraction, followed by an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB,
// TB; case-insensitive; a space before the unit is allowed). Examples:
// "512MiB", "2GiB", "1.5GB", "64KB", "100". The result must be a whole number
// of bytes and fit in an int64.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("%w: negative", ErrSizeRange)
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if !validNumber(num) {
		return 0, ErrSizeSyntax
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		if !isLetters(unit) {
			return 0, ErrSizeSyntax
		}
		return 0, fmt.Errorf("%w %q (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", ErrSizeUnit, unit)
	}
	// Exact arithmetic: float64 would turn "1.1GB" into 1100000000.0000002
	// and lose precision above 2⁵³.
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, ErrSizeSyntax
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%w: not a whole number of bytes", ErrSizeRange)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("%w: larger than %d bytes", ErrSizeRange, int64(math.MaxInt64))
	}
	return n.Int64(), nil
}

// validNumber reports whether s is digits with at most one inner dot:
// "1", "1.5"; not "", ".5", "1." or "1.2.3".
func validNumber(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	return strings.Count(s, ".") <= 1
}

func isLetters(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// FormatSize formats n the way ParseSize reads it back, exactly: with the
// largest binary unit that divides it ("1GiB"), else the largest decimal one
// ("1500MB"), else in bytes ("1000001").
func FormatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%d", n)
}
