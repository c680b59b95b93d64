package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrAddr is wrapped by the errors of CheckListenAddr and ParseNATSURLs.
var ErrAddr = errors.New("bad address")

// CheckListenAddr checks that addr is host:port with a numeric port in
// [0, 65535]; port 0 asks the system for a free port. The host may be empty
// (all interfaces) or a name; it is not resolved here.
func CheckListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: want host:port, such as 127.0.0.1:6380", ErrAddr)
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("%w: host %q", ErrAddr, host)
	}
	return checkPort(port)
}

// IsLoopback reports whether the listen address addr (host:port) only
// accepts connections from this host: its host is in 127.0.0.0/8, is ::1,
// or is "localhost". An empty host and an unspecified address (0.0.0.0,
// ::) listen on every interface, and any other name may resolve to
// anything: none of them is loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || strings.HasPrefix(port, "+") {
		return fmt.Errorf("%w: port %q is not a number in [0, 65535]", ErrAddr, port)
	}
	return nil
}

// natsSchemes are the URL schemes a NATS client accepts.
var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// ParseNATSURLs parses a comma-separated list of NATS server URLs, each
// nats://, tls://, ws:// or wss:// followed by host[:port] (and, as NATS
// allows, user:password@ before the host). A missing port means the
// scheme's default, as in the NATS clients. Every URL of the list is
// checked and every problem reported.
func ParseNATSURLs(s string) ([]*url.URL, error) {
	var urls []*url.URL
	var errs []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		u, err := parseNATSURL(part)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		urls = append(urls, u)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrAddr, strings.Join(errs, ", "))
	}
	return urls, nil
}

func parseNATSURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty URL in the list")
	}
	u, err := url.Parse(s)
	if !strings.Contains(s, "://") {
		err = errors.New("no scheme")
	}
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return nil, fmt.Errorf("%q: %v", redactOne(s), ue.Err)
	}
	if err != nil || !natsSchemes[u.Scheme] || u.Opaque != "" {
		return nil, fmt.Errorf("%q: not a nats://, tls://, ws:// or wss:// URL", redactOne(s))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", u.Redacted())
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if err := checkPort(p); err != nil || p == "0" {
			return nil, fmt.Errorf("%q: port %q is not a number in [1, 65535]", u.Redacted(), p)
		}
	}
	if (u.Scheme == "nats" || u.Scheme == "tls") && (u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "") {
		return nil, fmt.Errorf("%q: a %s URL has no path or query", u.Redacted(), u.Scheme)
	}
	return u, nil
}

// RedactNATSURLs returns the URL list s with every password replaced by
// "xxxxx", for logs. Parts that do not parse are kept only up to their
// scheme.
func RedactNATSURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactOne(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactOne(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if !strings.Contains(s, "@") {
			return s // no user part, so nothing to hide
		}
		// url.Parse's error repeats s, password and all.
		if scheme, _, ok := strings.Cut(s, "://"); ok {
			return scheme + "://…"
		}
		return "…"
	}
	if u.User != nil {
		if _, has := u.User.Password(); !has {
			// A bare user part is often a token (nats://TOKEN@host).
			u.User = url.User("xxxxx")
		}
	}
	return u.Redacted()
}
