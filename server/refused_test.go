package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/tier"
)

// TestRefusedReplies pins the exact reply to everything the cache or the
// registry refuses: an invalid model name or version, a malformed key
// scope, a key or value the disk tier cannot hold. Clients match on these
// texts, whichever command and code path produced the refusal.
func TestRefusedReplies(t *testing.T) {
	// A 16 MiB disk tier takes smaller records than the 64 MiB MaxValue.
	ts := startServerDisk(t, disktier.MinMaxBytes, nil)
	c := ts.dial(t)
	maxKey, maxRecord := ts.l2.Limits()
	longVersion := strings.Repeat("v", tier.MaxTagLen+1)
	longKey := strings.Repeat("k", maxKey+10)
	// The L2 key of a scoped key adds its model and epoch: 0x01, len, "clip", 8 bytes.
	scopedKey := "{clip}" + longKey[len("{clip}"):]
	bigValue := strings.Repeat("x", maxRecord)
	badModel := `-ERR invalid model name "a{b": it may not contain '{' or '}'`
	emptyModel := "-ERR invalid model name: empty"
	badVersion := `-ERR invalid version "v@1": it may not contain '@', '{' or '}'`
	emptyScope := `-ERR invalid key scope: empty model name in "@v1"`
	tooLongKey := fmt.Sprintf("-ERR key too large: key of %d bytes (at most %d)", len(longKey), maxKey-1)
	tooLongScoped := fmt.Sprintf("-ERR key too large: key of %d bytes (at most %d)", len(scopedKey), maxKey-(1+1+len("clip")+8))
	tooBig := fmt.Sprintf("-ERR value too large: value of %d bytes (the disk tier takes at most %d)", len(bigValue), maxRecord-tier.HeaderSize)
	runScript(t, c, []step{
		// MODEL.* arguments: the name is checked before the version.
		{args("MODEL.ROLLOUT", "a{b", "v1"), badModel},
		{args("MODEL.ROLLOUT", "a{b", "v@1"), badModel},
		{args("MODEL.ROLLOUT", "", ""), emptyModel},
		{args("MODEL.ROLLOUT", "clip", "v@1"), badVersion},
		{args("MODEL.ROLLOUT", "clip", "v}1"), `-ERR invalid version "v}1": it may not contain '@', '{' or '}'`},
		{args("MODEL.ROLLOUT", "clip", longVersion), fmt.Sprintf("-ERR invalid version: longer than %d bytes", tier.MaxTagLen)},
		{args("MODEL.ROLLOUT", "clip", ""), "-ERR invalid version: empty"},
		{args("MODEL.PURGE", "a{b"), badModel},
		{args("MODEL.PURGE", ""), emptyModel},
		{args("MODEL.GET", "clip"), "(nil)"},

		// Malformed scopes, on every command that takes a key.
		{args("SET", "{@v1}x", "v"), emptyScope},
		{args("SET", "{@v1}x", "v", "NX"), emptyScope},
		{args("GET", "{@v1}x"), emptyScope},
		{args("TTL", "{@v1}x"), emptyScope},
		{args("DEL", "{@v1}x"), emptyScope},
		{args("EXPIRE", "{@v1}x", "10"), emptyScope},
		{args("PERSIST", "{@v1}x"), emptyScope},
		{args("MSET", "a", "1", "{@v1}x", "v"), emptyScope},
		{args("LEASE.GET", "{@v1}x", "1000"), emptyScope},
		{args("SET", "{clip@}x", "v"), `-ERR invalid key scope: empty version in "clip@"`},
		{args("SET", "{clip@"+longVersion+"}x", "v"), fmt.Sprintf("-ERR invalid key scope: version longer than %d bytes", tier.MaxTagLen)},

		// Keys and values L2 cannot hold, through SET, SET with options and MSET.
		{args("SET", longKey, "v"), tooLongKey},
		{args("SET", longKey, "v", "GET"), tooLongKey},
		{args("MSET", "a", "1", longKey, "v"), tooLongKey},
		{args("SET", scopedKey, "v"), tooLongScoped},
		{args("SET", "k", bigValue), tooBig},
		{args("SET", "k", bigValue, "XX"), "(nil)"}, // XX: k is absent, nothing to refuse
		{args("SET", "k", bigValue, "NX"), tooBig},
		{args("MSET", "k", bigValue), tooBig},
		{args("EXISTS", "k", longKey), ":0"},
	})
}
