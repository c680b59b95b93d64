package main

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/config"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap"
)

// NATS modes besides a URL list.
const (
	natsEmbedded = "embedded"
	natsOff      = "off"
)

// defaultPeerTimeout is --peer-timeout's default.
const defaultPeerTimeout = 100 * time.Millisecond

// maxSocketPath is the longest Unix socket path Linux accepts: sun_path
// holds 108 bytes, the terminating NUL included.
const maxSocketPath = 107

// options configure a daemon. The flags are bound into it (flags.go); each
// field names its flag, and EnsureDefaults gives a zero field the flag's
// default. Validate names the flag of every problem it reports.
type options struct {
	// Socket is the Unix socket path (--socket). Default /tmp/tiercache.sock.
	Socket string
	// SocketMode is the socket file's permission bits (--socket-mode).
	// Default 0660. The owner must keep read and write permission.
	SocketMode fs.FileMode
	// TCP is the optional TCP listen address (--tcp); "" for none.
	TCP string
	// RequirePass, when set, makes every connection AUTH first, on the
	// socket and on TCP (--requirepass or --requirepass-file).
	RequirePass string
	// Unprotected is --protected-mode no. Default false (yes): as in
	// Redis' protected mode, a TCP address that is not loopback without
	// RequirePass, or an embedded NATS server listening on one without
	// NATSUser and NATSPassword, is a start-up error (see unprotected);
	// with Unprotected the daemon starts and logs a warning.
	Unprotected bool

	// DataDir holds L2 (Pebble) and local state (--data-dir). Default
	// ./tiercache-data.
	DataDir string
	// MemMax is L1's capacity in bytes (--mem-max). Default 1 GiB.
	MemMax int64
	// NoHugePages is --huge-pages no. Default false (yes): L1's large
	// records are allocated in memory advised for transparent huge pages
	// (see package internal/hugepage); with true the kernel's own setting
	// decides.
	NoHugePages bool
	// DiskMax is L2's capacity in bytes (--disk-max). Default 10 GiB.
	DiskMax int64
	// MaxValue is the largest value accepted (--max-value). Default 64 MiB;
	// a value given must be at most DiskMax. (With a small DiskMax and the
	// default, values the disk tier cannot hold are refused when they are
	// set: "-ERR value too large: … the disk tier takes at most …".)
	MaxValue int64
	// maxValueDefault: MaxValue is the default, not checked against DiskMax.
	maxValueDefault bool
	// WritePolicy is when writes reach L2 (--write-policy). Default through.
	WritePolicy tier.WritePolicy
	// Eviction is L1's eviction policy (--eviction). Default
	// policy.Default.
	Eviction policy.Eviction
	// FlushInterval bounds how long an acknowledged write-through SET waits
	// before it is durable in L2 (--flush-interval). Default 200ms.
	FlushInterval time.Duration

	// NATS is "embedded", "off" or a comma-separated list of NATS URLs
	// (--nats). Default embedded.
	NATS string
	// NATSListen is the embedded NATS server's client address
	// (--nats-listen). Default 127.0.0.1:4222.
	NATSListen string
	// NATS authentication and TLS (--nats-creds, --nats-nkey, --nats-user,
	// --nats-password, --nats-tls-ca, --nats-tls-cert, --nats-tls-key).
	NATSCreds, NATSUser, NATSPassword string
	// NATSNKey is a file holding an NKey user seed (--nats-nkey).
	NATSNKey                           string
	NATSTLSCA, NATSTLSCert, NATSTLSKey string
	// ModelsBucket is the JetStream KeyValue bucket of the model registry
	// (--models-bucket). Default tiercache-models.
	ModelsBucket string
	// NodeID is this daemon's name in the cluster (--node-id). Default the
	// host name.
	NodeID string

	// PeerListen is the TCP address this daemon serves its peers on
	// (--peer-listen); "" (the default) keeps it out of the fleet cache.
	// It needs NATS, where the fleet's membership lives. Port 0 picks a
	// free port, logged and announced.
	PeerListen string
	// PeerAdvertise is the address other daemons dial to reach it
	// (--peer-advertise). Default: the address listened on, which must
	// then name a host (not 0.0.0.0 nor ::).
	PeerAdvertise string
	// PeerPassword is what peers authenticate with (--peer-password or
	// --peer-password-file). Default none.
	PeerPassword string
	// PeerTLSCert, PeerTLSKey and PeerTLSCA are the files of mutual TLS
	// between peers (--peer-tls-cert, --peer-tls-key, --peer-tls-ca): all
	// three or none.
	PeerTLSCert, PeerTLSKey, PeerTLSCA string
	// PeerTimeout is the longest a lookup waits on a key's owner before it
	// is a local miss (--peer-timeout). Default 100ms (peer.ClientOptions'
	// Timeout explains it).
	PeerTimeout time.Duration

	// Metrics is the HTTP listen address of /metrics and /healthz
	// (--metrics); "" for none.
	Metrics string
	// ModelsReplicas is the replica count of the registry and members
	// buckets when this daemon creates them (--models-replicas). Default 1.
	ModelsReplicas int
	// MaxClients caps concurrent client connections (--max-clients).
	// Default 10000.
	MaxClients int
	// MaxLeases bounds the leases and lease waiters held at once
	// (--max-leases; server.Options.MaxLeases). Default 100,000.
	MaxLeases int
	// ShutdownTimeout bounds how long in-flight commands may run after a
	// shutdown begins before their connections are closed
	// (--shutdown-timeout). Default 10s.
	ShutdownTimeout time.Duration

	// Threads is how many threads run the daemon's Go code at once
	// (--threads, GOMAXPROCS); 0 is auto: half the CPUs, but at least 2
	// where there are 2 (autoThreads). GOMAXPROCS, when set, wins.
	//
	// The clients of a per-host daemon run on the same host (the socket is
	// local), so each request costs CPU on both sides, and a thread the
	// daemon keeps busy is one the clients lack. Measured with
	// redis-benchmark on 2 cores, 16 clients, 1 KB values: one thread served
	// 1.3–1.5× the GETs and write-back SETs that two did (the second
	// thread's wake-ups and spinning took CPU the client needed), but only
	// 0.2–0.4× the write-through SETs, whose disk pipeline (the flusher,
	// Pebble's commits) then waits behind the connections. Hence at least 2.
	Threads int
	// SetThreads makes New apply Threads (the program sets it; tests that
	// run a daemon in-process leave it off, as GOMAXPROCS is process-wide).
	SetThreads bool

	// SetMemoryLimit makes New set the Go memory limit for MemMax (see
	// tier.GoMemoryLimit) unless GOMEMLIMIT is set. The program sets it;
	// tests that run a daemon in-process leave it off, as the limit is
	// process-wide.
	SetMemoryLimit bool
	// Logger receives the daemon's log. Default: discard.
	Logger *zap.Logger
	// Version is reported by INFO and logged at start. Default "dev".
	Version string
}

// EnsureDefaults fills in the zero fields with the flags' defaults.
func (o *options) EnsureDefaults() {
	if o.Socket == "" {
		o.Socket = "/tmp/tiercache.sock"
	}
	if o.SocketMode == 0 {
		o.SocketMode = 0o660
	}
	if o.DataDir == "" {
		o.DataDir = "./tiercache-data"
	}
	if o.MemMax == 0 {
		o.MemMax = 1 << 30
	}
	if o.DiskMax == 0 {
		o.DiskMax = 10 << 30
	}
	if o.MaxValue == 0 {
		o.MaxValue, o.maxValueDefault = 64<<20, true
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.NATS == "" {
		o.NATS = natsEmbedded
	}
	if o.NATSListen == "" {
		o.NATSListen = "127.0.0.1:4222"
	}
	if o.ModelsBucket == "" {
		o.ModelsBucket = "tiercache-models"
	}
	if o.NodeID == "" {
		o.NodeID = defaultNodeID()
	}
	if o.PeerTimeout == 0 {
		o.PeerTimeout = defaultPeerTimeout
	}
	if o.ModelsReplicas == 0 {
		o.ModelsReplicas = 1
	}
	if o.MaxClients == 0 {
		o.MaxClients = 10000
	}
	if o.MaxLeases == 0 {
		o.MaxLeases = 100_000
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// defaultNodeID is the host name, or "tiercached" where it is unknown.
func defaultNodeID() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "tiercached"
}

// bucketName is what JetStream accepts as a KeyValue bucket name.
var bucketName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Validate reports every problem with o at once, each naming its flag
// (config.Problem), so that the flag binding can name how the value was
// given.
func (o *options) Validate() error {
	var ps config.Problems
	switch {
	case o.Socket == "":
		ps.Addf("socket", "a socket path is required")
	case len(o.Socket) > maxSocketPath:
		ps.Addf("socket", "longer than %d bytes, the limit of a Unix socket path", maxSocketPath)
	}
	switch {
	case o.SocketMode&^fs.ModePerm != 0:
		ps.Addf("socket-mode", "not a permission mode in 0000-0777")
	case o.SocketMode&0o600 != 0o600:
		ps.Addf("socket-mode", "the owner needs read and write permission")
	}
	if o.TCP != "" {
		if err := config.CheckListenAddr(o.TCP); err != nil {
			ps.Add("tcp", err)
		}
	}
	if o.DataDir == "" {
		ps.Addf("data-dir", "a data directory is required")
	}
	if o.Threads < 0 {
		ps.Addf("threads", "must be at least 1")
	}
	if o.MemMax < memtier.MinMaxBytes || o.MemMax > memtier.MaxMaxBytes {
		ps.Addf("mem-max", "must be within [%s, %s]", config.FormatSize(memtier.MinMaxBytes), config.FormatSize(memtier.MaxMaxBytes))
	}
	diskOK := o.DiskMax >= disktier.MinMaxBytes
	if !diskOK {
		ps.Addf("disk-max", "must be at least %s", config.FormatSize(disktier.MinMaxBytes))
	}
	switch {
	case o.MaxValue < 1:
		ps.Addf("max-value", "must be at least 1 byte")
	case diskOK && o.MaxValue > o.DiskMax && !o.maxValueDefault:
		// Checked only against a valid --disk-max, lest one bad value
		// produce two complaints.
		ps.Addf("max-value", "larger than --disk-max %s", config.FormatSize(o.DiskMax))
	}
	if o.WritePolicy != tier.WriteThrough && o.WritePolicy != tier.WriteBack {
		ps.Addf("write-policy", "want through or back")
	}
	if o.FlushInterval <= 0 {
		ps.Addf("flush-interval", "must be positive")
	}
	o.validateNATS(&ps)
	o.validatePeer(&ps)
	if !o.Unprotected {
		for _, e := range o.unprotected() {
			ps.Addf(e.flag, "not a loopback address, and no password protects it (protected mode): give %s, or --protected-mode no", e.fix)
		}
	}
	if !bucketName.MatchString(o.ModelsBucket) {
		ps.Addf("models-bucket", "want letters, digits, '-' and '_' only (a JetStream bucket name)")
	}
	switch {
	case o.NodeID == "":
		ps.Addf("node-id", "a node id is required")
	case len(o.NodeID) > 255:
		ps.Addf("node-id", "longer than 255 bytes")
	case !printable(o.NodeID):
		ps.Addf("node-id", "must not contain spaces or control characters (it is an INFO field)")
	}
	if o.Metrics != "" {
		if err := config.CheckListenAddr(o.Metrics); err != nil {
			ps.Add("metrics", err)
		}
	}
	if o.ModelsReplicas < 1 || o.ModelsReplicas > 5 {
		ps.Addf("models-replicas", "want 1 to 5 (JetStream's limit)")
	}
	if o.MaxClients < 1 {
		ps.Addf("max-clients", "must be at least 1")
	}
	if o.MaxLeases < 1 {
		ps.Addf("max-leases", "must be at least 1")
	}
	if o.ShutdownTimeout <= 0 {
		ps.Addf("shutdown-timeout", "must be positive")
	}
	return ps.Err()
}

// exposure is a listener that accepts connections from other hosts
// without a password.
type exposure struct {
	flag, addr string
	fix        string // what protects it
}

// unprotected returns the listeners that would accept connections from
// other hosts without a password: a --tcp address that is not loopback
// (config.IsLoopback) without RequirePass, and the embedded NATS server's
// --nats-listen address likewise without NATSUser and NATSPassword (the
// credentials it requires; the other NATS options are for a remote
// server). An address that does not parse is left to Validate's own
// problem.
func (o *options) unprotected() []exposure {
	var out []exposure
	if o.TCP != "" && config.CheckListenAddr(o.TCP) == nil && !config.IsLoopback(o.TCP) && o.RequirePass == "" {
		out = append(out, exposure{"tcp", o.TCP, "--requirepass or --requirepass-file"})
	}
	if o.NATS == natsEmbedded && config.CheckListenAddr(o.NATSListen) == nil && !config.IsLoopback(o.NATSListen) &&
		(o.NATSUser == "" || o.NATSPassword == "") {
		out = append(out, exposure{"nats-listen", o.NATSListen, "--nats-user and --nats-password"})
	}
	if o.PeerListen != "" && config.CheckListenAddr(o.PeerListen) == nil && !config.IsLoopback(o.PeerListen) &&
		o.PeerPassword == "" && !o.peerTLS() {
		out = append(out, exposure{"peer-listen", o.PeerListen, "--peer-password, --peer-password-file or --peer-tls-cert, --peer-tls-key and --peer-tls-ca"})
	}
	return out
}

// peerTLS reports whether the peer TLS files are given.
func (o *options) peerTLS() bool {
	return o.PeerTLSCert != "" && o.PeerTLSKey != "" && o.PeerTLSCA != ""
}

// validatePeer checks the fleet cache's settings.
func (o *options) validatePeer(ps *config.Problems) {
	if o.PeerTimeout <= 0 {
		ps.Addf("peer-timeout", "must be positive")
	}
	if o.PeerListen == "" {
		if o.PeerAdvertise != "" {
			ps.Addf("peer-advertise", "needs --peer-listen")
		}
		return
	}
	if err := config.CheckListenAddr(o.PeerListen); err != nil {
		ps.Add("peer-listen", err)
	} else if o.PeerAdvertise == "" && unspecifiedHost(o.PeerListen) {
		ps.Addf("peer-listen", "listens on every interface: give --peer-advertise, the address other daemons dial")
	}
	if o.NATS == natsOff {
		ps.Addf("peer-listen", "needs NATS, where the fleet's members are: --nats is off")
	}
	if o.PeerAdvertise != "" {
		if err := config.CheckListenAddr(o.PeerAdvertise); err != nil {
			ps.Add("peer-advertise", err)
		} else if unspecifiedHost(o.PeerAdvertise) || strings.HasSuffix(o.PeerAdvertise, ":0") {
			ps.Addf("peer-advertise", "want a host and port other daemons can dial")
		}
	}
	files := []struct{ flag, path string }{
		{"peer-tls-cert", o.PeerTLSCert}, {"peer-tls-key", o.PeerTLSKey}, {"peer-tls-ca", o.PeerTLSCA},
	}
	var given string
	var missing []string
	for _, f := range files {
		if f.path == "" {
			missing = append(missing, "--"+f.flag)
			continue
		}
		if given == "" {
			given = f.flag
		}
		if fi, err := os.Stat(f.path); err != nil {
			ps.Add(f.flag, pathErr(err))
		} else if fi.IsDir() {
			ps.Addf(f.flag, "is a directory")
		}
	}
	if given != "" && len(missing) > 0 {
		ps.Addf(given, "mutual TLS needs %s too", strings.Join(missing, " and "))
	}
}

// unspecifiedHost reports whether the listen address addr names no host
// (":7000", "0.0.0.0:7000", "[::]:7000"): other daemons cannot dial it.
func unspecifiedHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// validateNATS checks the NATS settings that matter for the mode chosen:
// the listen address of an embedded server, the URLs and files of a remote
// cluster.
func (o *options) validateNATS(ps *config.Problems) {
	switch o.NATS {
	case natsOff:
		return
	case natsEmbedded:
		if err := config.CheckListenAddr(o.NATSListen); err != nil {
			ps.Add("nats-listen", err)
		}
		return
	}
	if _, err := config.ParseNATSURLs(o.NATS); err != nil {
		ps.Add("nats", errors.New("want embedded, off or a comma-separated list of NATS URLs: "+
			strings.TrimPrefix(err.Error(), config.ErrAddr.Error()+": ")))
	}
	if (o.NATSTLSCert == "") != (o.NATSTLSKey == "") {
		if o.NATSTLSCert == "" {
			ps.Addf("nats-tls-key", "needs --nats-tls-cert too")
		} else {
			ps.Addf("nats-tls-cert", "needs --nats-tls-key too")
		}
	}
	if o.NATSPassword != "" && o.NATSUser == "" {
		ps.Addf("nats-password", "needs --nats-user too")
	}
	if o.NATSNKey != "" && (o.NATSCreds != "" || o.NATSUser != "") {
		ps.Addf("nats-nkey", "give NATS credentials one way: --nats-creds, --nats-nkey or --nats-user")
	}
	for _, f := range []struct{ flag, path string }{
		{"nats-creds", o.NATSCreds}, {"nats-nkey", o.NATSNKey}, {"nats-tls-ca", o.NATSTLSCA},
		{"nats-tls-cert", o.NATSTLSCert}, {"nats-tls-key", o.NATSTLSKey},
	} {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(f.path); err != nil {
			ps.Add(f.flag, pathErr(err))
		} else if fi.IsDir() {
			ps.Addf(f.flag, "is a directory")
		}
	}
}

// pathErr drops the path and operation of an *fs.PathError, which the
// problem's message names already.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func printable(s string) bool {
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
