package tier

import (
	"bytes"
	"fmt"
)

// Scope is the model scope of a key of the form {MODEL}rest or {MODEL@VERSION}rest.
type Scope struct {
	// Model is the model name; it may contain '/' (Hugging Face ids).
	Model string
	// Version is the version named in the key, "" when the key has none.
	Version string
	// Versioned reports whether the key named a version ({MODEL@VERSION}).
	Versioned bool
}

// ParseScope returns the model scope of key. ok is false for a plain key: one
// that does not start with '{', has no closing '}', or has nothing between the
// braces ("{}" is a plain key, as an empty hash tag is in Redis). The scope
// ends at the first '}'; VERSION is what follows the last '@' inside it.
//
// A key whose scope names an empty model ("{@v1}x") or an empty version
// ("{clip@}x") is an *InvalidError matching ErrBadScope: it is almost certainly a
// pipeline bug, and caching it as a plain key would bypass version fencing.
func ParseScope(key []byte) (s Scope, ok bool, err error) {
	if len(key) < 2 || key[0] != '{' {
		return Scope{}, false, nil
	}
	end := bytes.IndexByte(key[1:], '}')
	if end <= 0 {
		return Scope{}, false, nil
	}
	inner := key[1 : 1+end]
	at := bytes.LastIndexByte(inner, '@')
	if at < 0 {
		return Scope{Model: string(inner)}, true, nil
	}
	model, version := inner[:at], inner[at+1:]
	switch {
	case len(model) == 0:
		return Scope{}, false, &InvalidError{What: whatScope, Name: string(inner), Reason: fmt.Sprintf("empty model name in %q", inner)}
	case len(version) == 0:
		return Scope{}, false, &InvalidError{What: whatScope, Name: string(inner), Reason: fmt.Sprintf("empty version in %q", inner)}
	case len(version) > MaxTagLen:
		return Scope{}, false, &InvalidError{What: whatScope, Name: string(inner), Reason: fmt.Sprintf("version longer than %d bytes", MaxTagLen)}
	}
	return Scope{Model: string(model), Version: string(version), Versioned: true}, true, nil
}
