package tier

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		key  string
		want Scope
		ok   bool
		bad  bool
	}{
		{key: "plain"},
		{key: ""},
		{key: "{"},
		{key: "{}"},
		{key: "{}rest"},
		{key: "{clip"},
		{key: "x{clip}y"},
		{key: "{clip}", want: Scope{Model: "clip"}, ok: true},
		{key: "{clip}prompt", want: Scope{Model: "clip"}, ok: true},
		{key: "{clip@v2}prompt", want: Scope{Model: "clip", Version: "v2", Versioned: true}, ok: true},
		{key: "{openai/clip-vit-large-patch14@2024-01}p", want: Scope{Model: "openai/clip-vit-large-patch14", Version: "2024-01", Versioned: true}, ok: true},
		{key: "{user@org/model@v3}k", want: Scope{Model: "user@org/model", Version: "v3", Versioned: true}, ok: true},
		{key: "{clip}}x", want: Scope{Model: "clip"}, ok: true},
		{key: "{a\x00b@\xff}k", want: Scope{Model: "a\x00b", Version: "\xff", Versioned: true}, ok: true},
		{key: "{@v1}x", bad: true},
		{key: "{clip@}x", bad: true},
	}
	for _, tt := range tests {
		got, ok, err := ParseScope([]byte(tt.key))
		if tt.bad {
			if !errors.Is(err, ErrBadScope) {
				t.Errorf("ParseScope(%q) err = %v, want ErrBadScope", tt.key, err)
			}
			continue
		}
		if err != nil || ok != tt.ok || got != tt.want {
			t.Errorf("ParseScope(%q) = %+v, %v, %v; want %+v, %v", tt.key, got, ok, err, tt.want, tt.ok)
		}
	}
}

func TestModelKeysAreContiguous(t *testing.T) {
	// Every key of a model and epoch range sorts inside ModelRange; keys of
	// other models, even ones whose name extends it, sort outside.
	start, end := ModelRange("clip", 0, 5)
	in := [][]byte{ModelKey("clip", 0, []byte("{clip}a")), ModelKey("clip", 4, []byte("\xff\xff"))}
	out := [][]byte{
		ModelKey("clip", 5, []byte("{clip}a")), ModelKey("clip2", 0, nil), ModelKey("cli", 9, nil),
		ModelKey("", 0, nil), PlainKey([]byte("{clip}a")), ModelKey("clip\x00", 0, nil),
	}
	for _, k := range in {
		if bytes.Compare(k, start) < 0 || bytes.Compare(k, end) >= 0 {
			t.Errorf("%q not in [%q, %q)", k, start, end)
		}
	}
	for _, k := range out {
		if bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 {
			t.Errorf("%q in [%q, %q)", k, start, end)
		}
	}
	all0, allEnd := ModelRange("clip", 0, 0)
	if k := ModelKey("clip", 1<<63, []byte("z")); bytes.Compare(k, all0) < 0 || bytes.Compare(k, allEnd) >= 0 {
		t.Errorf("open-ended range misses epoch 2^63")
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"{clip@v1}x", "{clip}x", "{}", "{@}", "{a@b@c}d", "plain", "{\xff@\x00}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		s, ok, err := ParseScope(key)
		if err != nil {
			if ok || !errors.Is(err, ErrBadScope) {
				t.Fatalf("error %v with ok=%v", err, ok)
			}
			return
		}
		if !ok {
			return
		}
		if s.Model == "" || (s.Versioned && s.Version == "") || (!s.Versioned && s.Version != "") {
			t.Fatalf("bad scope %+v", s)
		}
		// The scope is a prefix of the key.
		scope := "{" + s.Model
		if s.Versioned {
			scope += "@" + s.Version
		}
		if !bytes.HasPrefix(key, []byte(scope+"}")) {
			t.Fatalf("scope %+v is not the prefix of %q", s, key)
		}
		// The model key starts with the model's range.
		start, end := ModelRange(s.Model, 0, 0)
		if mk := ModelKey(s.Model, 3, key); bytes.Compare(mk, start) < 0 || bytes.Compare(mk, end) >= 0 {
			t.Fatalf("model key outside its range")
		}
	})
}
