package invalidation

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Embedded is the Options.URLs that runs an in-process NATS server with
// JetStream.
const Embedded = "embedded"

// Defaults of the options.
const (
	DefaultEmbeddedListen    = "127.0.0.1:4222"
	DefaultBucket            = "tiercache-models"
	DefaultMembersBucket     = "tiercache-members"
	DefaultReplicas          = 1
	DefaultHeartbeatInterval = time.Second
	DefaultMemberTTL         = 5 * time.Second
	DefaultSyncTimeout       = 5 * time.Second
	DefaultReconnectWait     = 500 * time.Millisecond
	// BucketHistory is the history kept per model by a models bucket this
	// package creates. A daemon that was away for fewer changes of a model
	// than this replays each of them; beyond it, it still converges (see
	// the package documentation, "Catching up").
	BucketHistory = 16
)

// Options configure a Cluster. Zero fields take the documented defaults
// (EnsureDefaults); Validate reports every problem at once.
type Options struct {
	// URLs is Embedded ("embedded", the default) or a comma-separated list
	// of NATS server URLs (nats://host:port; the scheme may be omitted).
	// Credentials in a URL are used but never logged. A daemon without NATS
	// has no Cluster: its registry is a tier.LocalRegistry.
	URLs string
	// EmbeddedListen is the client address of the embedded server. Port 0
	// picks a free port (logged, and in ClusterInfo as nats_url). Default
	// 127.0.0.1:4222.
	EmbeddedListen string
	// StoreDir is the JetStream store of the embedded server (e.g.
	// DATA_DIR/nats). Required with Embedded.
	StoreDir string
	// Creds is a NATS credentials file (JWT and NKey seed).
	Creds string
	// NKey is a file holding an NKey user seed ("SU…"), for servers that
	// authenticate users by NKey without JWTs (authorization { users = [
	// { nkey: U… } ] }).
	NKey string
	// User and Password authenticate to NATS. With Embedded, when both are
	// set, the embedded server requires them from every client too.
	User, Password string
	// TLSCA, TLSCert and TLSKey configure TLS to NATS servers: the CA that
	// signs the servers' certificates, and this client's certificate and
	// key (both or neither). The embedded server itself does not serve TLS.
	TLSCA, TLSCert, TLSKey string
	// Bucket is the JetStream KeyValue bucket holding the model registry;
	// created if missing (history BucketHistory, Replicas replicas), bound
	// as it is if present. Default "tiercache-models".
	Bucket string
	// Replicas is the number of replicas of the buckets this daemon creates:
	// 1 for a single NATS server, 3 for a three-node cluster. Default 1.
	Replicas int
	// MembersBucket is the KeyValue bucket where each daemon announces
	// itself and the registry revision it applied; its entries live
	// MemberTTL. Default "tiercache-members".
	MembersBucket string
	// NodeID is this daemon's name in the cluster. Required.
	NodeID string
	// Version is this daemon's software version, announced in its member
	// entry. Default "dev".
	Version string
	// PeerAddr is the host:port other daemons dial to reach this daemon's
	// peer server, announced in its member entry (Member.Peer). "" (the
	// default) when the daemon does not serve peers. It must be an
	// address others can dial: not an unspecified host such as 0.0.0.0.
	PeerAddr string
	// OnMembersChange, if set, is called with the live members (as
	// LiveMembers returns them) whenever the members or their peer
	// addresses differ from those of the last call (the first call: from
	// none): a member joined, left or changed its address. Heartbeats,
	// which change only Applied and Time, call nothing. Calls come one at
	// a time from a goroutine of the Cluster, never after Close returned;
	// changes made while one runs are coalesced into the next call. It
	// must not call Close. Setting it, or PeerAddr, makes the daemon keep
	// the members view (Cluster.LiveMembers).
	OnMembersChange func([]Member)
	// Cache is the cache whose model registry follows the bucket. Required.
	Cache Cache
	// Logger receives connection changes, applied changes and problems.
	// Credentials are never logged. Default zap.NewNop().
	Logger *zap.Logger
	// HeartbeatInterval is how often the member entry is refreshed (it is
	// also refreshed right after every applied change). Default 1s.
	HeartbeatInterval time.Duration
	// MemberTTL is how long a member entry lives without a refresh: a
	// daemon silent for longer is no longer a live member. Applies when
	// this daemon creates the members bucket. Default 5s.
	MemberTTL time.Duration
	// SyncTimeout bounds how long WaitSynced holds model-scoped requests
	// after start-up and after a reconnect while the registry catches up,
	// and how long Rollout and Purge wait for the change to be applied
	// here. Past it the daemon serves with the registry state it has.
	// Default 5s.
	SyncTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts (plus up to
	// 100ms of jitter). Default 500ms.
	ReconnectWait time.Duration
}

// EnsureDefaults fills in the zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.URLs == "" {
		o.URLs = Embedded
	}
	if o.EmbeddedListen == "" {
		o.EmbeddedListen = DefaultEmbeddedListen
	}
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.MembersBucket == "" {
		o.MembersBucket = DefaultMembersBucket
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.MemberTTL == 0 {
		o.MemberTTL = DefaultMemberTTL
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	if o.ReconnectWait == 0 {
		o.ReconnectWait = DefaultReconnectWait
	}
}

// Validate reports every problem with o at once. Messages never contain
// credentials.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("invalidation: "+format, args...))
	}
	if o.Cache == nil {
		add("Cache is required")
	}
	if o.NodeID == "" {
		add("node id is required")
	} else if _, err := EncodeModel(o.NodeID); err != nil {
		add("node id %q cannot be used: %v", o.NodeID, err)
	}
	switch o.URLs {
	case "off":
		add(`NATS URL "off": a daemon without NATS keeps its registry with tier.LocalRegistry, not a Cluster`)
	case Embedded:
		if _, err := parseListen(o.EmbeddedListen); err != nil {
			add("NATS listen address %q: %v", o.EmbeddedListen, err)
		}
		if o.StoreDir == "" {
			add("a JetStream store directory is required with --nats embedded")
		}
	default:
		if _, err := splitURLs(o.URLs); err != nil {
			errs = append(errs, err)
		}
	}
	if !validBucket(o.Bucket) {
		add("models bucket %q: want letters, digits, '-' and '_'", o.Bucket)
	}
	if !validBucket(o.MembersBucket) {
		add("members bucket %q: want letters, digits, '-' and '_'", o.MembersBucket)
	}
	if o.PeerAddr != "" {
		if err := checkPeerAddr(o.PeerAddr); err != nil {
			add("peer address %q: %v", o.PeerAddr, err)
		}
	}
	if o.Bucket == o.MembersBucket {
		add("the models and members buckets must differ (both %q)", o.Bucket)
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		add("replicas %d: want 1 to 5", o.Replicas)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		add("a TLS certificate needs its key and a key its certificate")
	}
	if n := btoi(o.User != "") + btoi(o.Creds != "") + btoi(o.NKey != ""); n > 1 {
		add("give NATS credentials one way: a creds file, an NKey seed file, or user and password")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"heartbeat interval", o.HeartbeatInterval},
		{"member TTL", o.MemberTTL},
		{"sync timeout", o.SyncTimeout},
		{"reconnect wait", o.ReconnectWait},
	} {
		if d.v <= 0 {
			add("%s %v must be positive", d.name, d.v)
		}
	}
	if o.HeartbeatInterval > 0 && o.MemberTTL > 0 && o.MemberTTL < 2*o.HeartbeatInterval {
		add("member TTL %v must be at least twice the heartbeat interval %v", o.MemberTTL, o.HeartbeatInterval)
	}
	return errors.Join(errs...)
}

func validBucket(b string) bool {
	if b == "" {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkPeerAddr checks that addr is a host:port other daemons can dial.
func checkPeerAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q: want 1 to 65535", port)
	}
	if host == "" {
		return errors.New("no host: other daemons need one to dial")
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%s is not an address other daemons can dial", host)
	}
	return nil
}

// parseListen parses host:port; port 0 becomes -1, nats-server's "any free
// port" (its 0 means the default port 4222).
func parseListen(addr string) (hostPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return hostPort{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return hostPort{}, fmt.Errorf("port %q: want 0 to 65535", port)
	}
	if p == 0 {
		p = -1
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return hostPort{host, p}, nil
}

type hostPort struct {
	host string
	port int
}

// splitURLs parses a comma-separated NATS URL list. Errors name the URL by
// position and redacted form only.
func splitURLs(list string) ([]string, error) {
	var out []string
	var errs []error
	for i, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			errs = append(errs, fmt.Errorf("invalidation: NATS URL #%d is empty", i+1))
			continue
		}
		u, err := parseURL(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalidation: NATS URL #%d is malformed: %v", i+1, err))
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			errs = append(errs, fmt.Errorf("invalidation: NATS URL %s: scheme %q: want nats, tls, ws or wss", redactURL(u), u.Scheme))
			continue
		}
		if u.Hostname() == "" {
			errs = append(errs, fmt.Errorf("invalidation: NATS URL %s has no host", redactURL(u)))
			continue
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				errs = append(errs, fmt.Errorf("invalidation: NATS URL %s: port %q: want 1 to 65535", redactURL(u), p))
				continue
			}
		}
		out = append(out, raw)
	}
	return out, errors.Join(errs...)
}

// parseURL parses a NATS URL the way nats.go does: a missing scheme means
// nats://. The error never contains the URL (it may hold a password).
func parseURL(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, errors.New("cannot parse")
	}
	return u, nil
}

// redactURL returns u without its user information (a user name may be a
// token).
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// RedactURLs returns a comma-separated NATS URL list with every user name,
// password and token removed, for logging.
func RedactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, raw := range parts {
		u, err := parseURL(strings.TrimSpace(raw))
		if err != nil {
			parts[i] = "<malformed>"
			continue
		}
		parts[i] = redactURL(u)
	}
	return strings.Join(parts, ",")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
