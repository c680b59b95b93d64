package memtier

import (
	"errors"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/tier"
)

// TestDefaultShards documents the ring share, shard count and record limit
// derived for common capacities (the table in the Options doc).
func TestDefaultShards(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxBytes   int64
		smallBytes int64
		shards     int
		maxRecord  int
	}{
		{"1MiB", 1 << 20, 1 << 20, 1, 1024},
		{"32MiB", 32 << 20, 4 << 20, 4, 2936012},
		{"256MiB", 256 << 20, 32 << 20, 32, 23488102},
		{"1GiB", 1 << 30, 128 << 20, 64, 93952409},
		{"16GiB", 16 << 30, 2 << 30, 64, 1503238553},
		// Not a whole MiB: rounded down.
		{"1GiB+1", 1<<30 + 1, 128 << 20, 64, 93952409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{MaxBytes: tc.maxBytes}
			o.EnsureDefaults()
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			if o.SmallBytes != tc.smallBytes || o.Shards != tc.shards || o.MaxRecord != tc.maxRecord {
				t.Errorf("SmallBytes, Shards, MaxRecord = %d, %d, %d; want %d, %d, %d",
					o.SmallBytes, o.Shards, o.MaxRecord, tc.smallBytes, tc.shards, tc.maxRecord)
			}
			sb := shardBytes(o.SmallBytes, o.Shards)
			if int64(recordsPerShard)*int64(o.SmallRecord+entryOverhead) >= sb {
				t.Errorf("a ring shard of %d bytes does not hold %d records of %d", sb, recordsPerShard, o.SmallRecord)
			}
			if tc.maxBytes >= 64<<20 && o.MaxRecord < 4<<20+4<<10 {
				t.Errorf("MaxRecord %d does not take a 4 MiB embedding", o.MaxRecord)
			}
		})
	}
}

func TestZeroOptions(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.MaxBytes != DefaultMaxBytes || o.Clock != (tier.SystemClock{}) || o.Shards != 64 || o.SmallRecord != DefaultSmallRecord {
		t.Errorf("defaults: %+v", o)
	}
}

func TestExplicitOptions(t *testing.T) {
	o := Options{MaxBytes: 8 << 20, MaxRecord: 128 << 10, SmallBytes: 2 << 20, SmallRecord: 4 << 10}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Shards != 2 || o.MaxRecord != 128<<10 || o.SmallBytes != 2<<20 || o.SmallRecord != 4<<10 {
		t.Errorf("explicit options changed: %+v", o)
	}

	// A record larger than the whole cache.
	o = Options{MaxBytes: 32 << 20, MaxRecord: 33 << 20}
	o.EnsureDefaults()
	if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Validate = %v, want ErrInvalidOptions", err)
	}
	if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("New = %v, want ErrInvalidOptions", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	o := Options{MaxBytes: 100, Shards: 3, MaxRecord: -1, SmallRecord: 1}
	err := o.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Validate = %v, want ErrInvalidOptions", err)
	}
	for _, want := range []string{"MaxBytes 100", "Shards 3", "MaxRecord -1", "SmallRecord 1", "SmallBytes 0", "Clock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	for _, o := range []Options{
		{MaxBytes: 1 << 30, Shards: 2048},                        // too many shards
		{MaxBytes: 1 << 30, SmallRecord: 128 << 10},              // small records too large
		{MaxBytes: 1 << 20, Shards: 1024},                        // ring shards too small for any record
		{MaxBytes: 8 << 30, SmallBytes: 4 << 30, Shards: 2},      // ring shard over 1 GiB
		{MaxBytes: MaxMaxBytes + mib},                            // too large
		{MaxBytes: 64 << 20, SmallBytes: 65 << 20},               // rings larger than the cache
		{MaxBytes: 64 << 20, SmallBytes: 512 << 10},              // rings under 1 MiB
		{MaxBytes: 64 << 20, MaxRecord: 512},                     // records too small
		{MaxBytes: 64 << 20, MaxRecord: 65 << 20},                // records larger than the cache
		{MaxBytes: 64 << 20, SmallRecord: 8 << 10, Shards: 1024}, // a ring shard holds too few
	} {
		o.EnsureDefaults()
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidOptions", o, err)
		}
	}
}
