package invalidation

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/tiercache/tiercache/tier"
)

// encodedPrefix starts every KV key that holds an encoded model name. Raw
// model names that start with it are encoded too, so the two namespaces
// never collide.
const encodedPrefix = "_m."

// EncodeModel returns the KV key of model in the registry bucket.
//
// The key is model itself when model is a valid KV key made only of
// letters, digits and "-/_=." (no leading or trailing '.', no "..") and does
// not start with "_m."; so `nats kv put tiercache-models MODEL VERSION` works
// for every usual name, including Hugging Face ids such as
// "openai/clip-vit-large-patch14". Any other name is encoded as "_m."
// followed by its unpadded URL-safe base64 (RFC 4648 §5): "_m.Y2xpcCB2MQ"
// for "clip v1".
//
// EncodeModel takes any string, so it checks that model is a model name
// (tier.ValidateModel): other names are an error matching ErrInvalidModel.
// A tier.ModelChange's model was checked when the change was made, and
// Publisher encodes it without checking it again.
func EncodeModel(model string) (string, error) {
	if err := tier.ValidateModel(model); err != nil {
		return "", err
	}
	return modelKey(model), nil
}

// modelKey is EncodeModel's encoding, for a model name already checked.
func modelKey(model string) string {
	if rawKey(model) {
		return model
	}
	return encodedPrefix + base64.RawURLEncoding.EncodeToString([]byte(model))
}

// DecodeModel returns the model name a registry KV key stands for. It is
// the inverse of EncodeModel and accepts only the keys EncodeModel returns
// (one key per model), other keys are an error matching ErrInvalidModel.
func DecodeModel(key string) (string, error) {
	name, err := decodeKey(key)
	if err != nil {
		return "", err
	}
	if err := tier.ValidateModel(name); err != nil {
		return "", fmt.Errorf("key %q: %w", key, err)
	}
	return name, nil
}

// decodeKey is DecodeModel without the check of the name it decodes to:
// the inverse of modelKey, accepting only the keys modelKey returns. The
// follower checks the name once, as it makes the change of an entry
// (tier.NewRollout, tier.NewPurge).
func decodeKey(key string) (string, error) {
	if !strings.HasPrefix(key, encodedPrefix) {
		if !rawKey(key) {
			return "", fmt.Errorf("%w: key %q is not a model key", ErrInvalidModel, key)
		}
		return key, nil
	}
	enc := key[len(encodedPrefix):]
	b, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("%w: key %q: bad encoding: %v", ErrInvalidModel, key, err)
	}
	if base64.RawURLEncoding.EncodeToString(b) != enc {
		// The decoder skips CR and LF even when strict.
		return "", fmt.Errorf("%w: key %q: not canonically encoded", ErrInvalidModel, key)
	}
	name := string(b)
	if rawKey(name) {
		return "", fmt.Errorf("%w: key %q encodes %q, whose key is the name itself", ErrInvalidModel, key, name)
	}
	return name, nil
}

// rawKey reports whether s can be its own KV key: a valid key by nats.go's
// rules (letters, digits, "-/_=.", no empty dot-separated token) outside the
// encoded namespace.
func rawKey(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") || strings.HasPrefix(s, encodedPrefix) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '/' || c == '_' || c == '=' || c == '.') {
			return false
		}
	}
	return true
}
