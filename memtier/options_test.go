package memtier

import (
	"errors"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/tier"
)

// TestDefaultShards documents the shard count and record limit derived for
// common capacities (the table in the Options doc).
func TestDefaultShards(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxBytes  int64
		shards    int
		maxRecord int
	}{
		{"1MiB", 1 << 20, 8, 13084},
		// No 4 MiB value fits 32 MiB with 10 per shard: keep 8 shards.
		{"32MiB", 32 << 20, 8, 419407},
		// 4 shards would accept 4 MiB values; concurrency wins.
		{"256MiB", 256 << 20, 8, 3355420},
		{"512MiB", 512 << 20, 8, 6710863},
		// The default: 32 shards would cut MaxRecord to 3.2 MiB.
		{"1GiB", 1 << 30, 16, 6710863},
		{"16GiB", 16 << 30, 256, 6710863},
		{"1TiB", 1 << 40, 1024, 107374159},
		// Not a whole MiB: rounded down.
		{"1GiB+1", 1<<30 + 1, 16, 6710863},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{MaxBytes: tc.maxBytes}
			o.EnsureDefaults()
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			if o.Shards != tc.shards || o.MaxRecord != tc.maxRecord {
				t.Errorf("Shards, MaxRecord = %d, %d; want %d, %d", o.Shards, o.MaxRecord, tc.shards, tc.maxRecord)
			}
			sb := shardBytes(o.MaxBytes, o.Shards)
			if int64(recordsPerShard)*int64(o.MaxRecord+entryOverhead) >= sb {
				t.Errorf("a shard of %d bytes does not hold %d records of %d", sb, recordsPerShard, o.MaxRecord)
			}
			if overhead := int64(o.Shards) * int64(o.MaxRecord); overhead*10 > o.MaxBytes {
				t.Errorf("copy buffers %d exceed 10%% of %d", overhead, o.MaxBytes)
			}
			if tc.maxBytes >= 512<<20 && o.MaxRecord < targetRecord {
				t.Errorf("MaxRecord %d below the 4 MiB target", o.MaxRecord)
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
	if o.MaxBytes != DefaultMaxBytes || o.Clock != (tier.SystemClock{}) || o.Shards != 16 {
		t.Errorf("defaults: %+v", o)
	}
}

func TestExplicitOptions(t *testing.T) {
	// MaxRecord given: the most shards that each hold 10 of them.
	o := Options{MaxBytes: 8 << 20, MaxRecord: 128 << 10}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Shards != 4 {
		t.Errorf("Shards = %d, want 4", o.Shards)
	}

	// Shards given: the largest record 10 fit in a shard.
	o = Options{MaxBytes: 64 << 20, Shards: 1}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.MaxRecord != 6710863 {
		t.Errorf("MaxRecord = %d, want 6710863", o.MaxRecord)
	}

	// A record too large for even one shard.
	o = Options{MaxBytes: 32 << 20, MaxRecord: 4 << 20}
	o.EnsureDefaults()
	if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Validate = %v, want ErrInvalidOptions", err)
	}
	if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("New = %v, want ErrInvalidOptions", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	o := Options{MaxBytes: 100, Shards: 3, MaxRecord: -1}
	err := o.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Validate = %v, want ErrInvalidOptions", err)
	}
	for _, want := range []string{"MaxBytes 100", "Shards 3", "MaxRecord -1", "Clock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	for _, o := range []Options{
		{MaxBytes: 1 << 30, Shards: 2048},                        // too many shards
		{MaxBytes: 1 << 30, Shards: 16, MaxRecord: 7 << 20},      // record too large for the shards
		{MaxBytes: 1 << 20, Shards: 1024},                        // shards too small for any record
		{MaxBytes: 4 << 30, Shards: 2},                           // shard over 1 GiB
		{MaxBytes: MaxMaxBytes + mib},                            // too large
		{MaxBytes: MaxMaxBytes, MaxRecord: maxShardBytes/10 + 1}, // fits only shards over 1 GiB
	} {
		o.EnsureDefaults()
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidOptions", o, err)
		}
	}
}
