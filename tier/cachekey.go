package tier

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// CacheKey returns the key of a pipeline stage's output for inputs, the same
// key the Python client's cache_key computes:
// "{MODEL@VERSION}STAGE:" + the hex SHA-256 of EncodeInputs(inputs).
// model and version must be non-empty without '{' or '}', and version
// without '@'.
func CacheKey(model, version, stage string, inputs any) ([]byte, error) {
	switch {
	case model == "" || strings.ContainsAny(model, "{}"):
		return nil, fmt.Errorf("tier: cache key: model %q must be non-empty without '{' or '}'", model)
	case version == "" || strings.ContainsAny(version, "{}@"):
		return nil, fmt.Errorf("tier: cache key: version %q must be non-empty without '{', '}' or '@'", version)
	}
	enc, err := EncodeInputs(inputs)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(enc)
	return []byte("{" + model + "@" + version + "}" + stage + ":" + hex.EncodeToString(sum[:])), nil
}

// EncodeInputs returns the canonical encoding of v that CacheKey hashes (the
// encoding is specified in clients/python/tiercache/keys.py, which the
// vectors in clients/testdata/cache_key_vectors.json check both against):
//
//	nil            n
//	bool           t or f
//	integers       i DECIMAL ;   (any Go integer type, *big.Int, or a
//	                              json.Number without '.', 'e' or 'E')
//	floats         d 16 hex digits of the IEEE-754 binary64 bits ;
//	                             (float32 is widened exactly; NaN and ±Inf
//	                              are an error)
//	string         s LENGTH : UTF-8 bytes
//	[]byte         b LENGTH : bytes
//	slices, arrays l ITEMS e
//	maps           m (KEY as string, VALUE)… e, sorted by the key's bytes;
//	               keys must be strings
func EncodeInputs(v any) ([]byte, error) {
	return appendInput(nil, v)
}

func appendInput(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, 'n'), nil
	case bool:
		if x {
			return append(b, 't'), nil
		}
		return append(b, 'f'), nil
	case string:
		return appendStr(b, 's', x), nil
	case []byte:
		return appendStr(b, 'b', string(x)), nil
	case *big.Int:
		b = append(b, 'i')
		b = x.Append(b, 10)
		return append(b, ';'), nil
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			n, ok := new(big.Int).SetString(s, 10)
			if !ok {
				return nil, fmt.Errorf("tier: cache key input: bad number %q", s)
			}
			return appendInput(b, n)
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("tier: cache key input: %w", err)
		}
		return appendFloat(b, f)
	case float64:
		return appendFloat(b, x)
	case float32:
		return appendFloat(b, float64(x))
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b = append(b, 'i')
		b = strconv.AppendInt(b, rv.Int(), 10)
		return append(b, ';'), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b = append(b, 'i')
		b = strconv.AppendUint(b, rv.Uint(), 10)
		return append(b, ';'), nil
	case reflect.Slice, reflect.Array:
		b = append(b, 'l')
		var err error
		for i := range rv.Len() {
			if b, err = appendInput(b, rv.Index(i).Interface()); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("tier: cache key input maps need string keys, not %s", rv.Type().Key())
		}
		keys := make([]string, 0, rv.Len())
		for _, k := range rv.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys) // byte order, as Python sorts the UTF-8 bytes
		b = append(b, 'm')
		var err error
		for _, k := range keys {
			b = appendStr(b, 's', k)
			if b, err = appendInput(b, rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key())).Interface()); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	}
	return nil, fmt.Errorf("tier: cannot encode %T in a cache key; pass its digest as []byte", v)
}

func appendStr(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("tier: cache key inputs may not hold NaN or infinity")
	}
	b = append(b, 'd')
	bits := math.Float64bits(f)
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(bits>>uint(shift))&15])
	}
	return append(b, ';'), nil
}
