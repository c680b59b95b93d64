package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/tiercache/tiercache/internal/config"
	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap/zapcore"
)

// envPrefix starts the environment variable of every flag:
// TIERCACHE_MEM_MAX for --mem-max.
const envPrefix = "TIERCACHE_"

// cli is the command line, bound: the daemon's options and what main
// itself acts on.
type cli struct {
	opts      options
	logLevel  zapcore.Level
	logFormat string
	version   bool // --version: print the version and exit
	usage     string
	// unknownEnv are TIERCACHE_* variables that match no flag, most likely
	// misspelt; they are logged once the daemon runs.
	unknownEnv []string
}

// flagText holds every flag's text as given. Values are parsed after the
// environment is bound, all of them, so that every bad one is reported.
type flagText struct {
	socket, socketMode, tcp, requirePass, requirePassFile  string
	protectedMode                                          string
	dataDir, memMax, diskMax, maxValue, writePolicy, flush string
	nats, natsListen, natsCreds, natsUser, natsPassword    string
	natsNKey                                               string
	natsTLSCA, natsTLSCert, natsTLSKey, modelsBucket, node string
	metrics, logLevel, logFormat, maxClients, shutdown     string
	modelsReplicas, threads, hugePages                     string
	peerListen, peerAdvertise, peerPassword, peerPassFile  string
	peerTLSCert, peerTLSKey, peerTLSCA, peerTimeout        string
	maxLeases, eviction                                    string
}

// newFlagSet returns the flag table, with the defaults in t.
func newFlagSet(t *flagText, version *bool) *pflag.FlagSet {
	fs := pflag.NewFlagSet("tiercached", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(discard{}) // errors are returned and printed by main, in one line
	v := func(p *string, def, name, typ, usage string) {
		*p = def
		fs.Var(config.Text(p, typ), name, usage)
	}
	v(&t.socket, "/tmp/tiercache.sock", "socket", "PATH", "Unix socket the RESP server listens on")
	v(&t.socketMode, "0660", "socket-mode", "MODE", "file mode of the socket (octal); it never has wider permissions, even briefly")
	v(&t.tcp, "", "tcp", "ADDR", "optional RESP listener on TCP, e.g. 127.0.0.1:6380 (default off)")
	v(&t.protectedMode, "yes", "protected-mode", "yes|no", "yes: a --tcp, --nats-listen or --peer-listen address that is not loopback, without a password (--requirepass; for NATS --nats-user and --nats-password; for peers --peer-password or peer TLS), is an error; no: start anyway, with a warning")
	v(&t.requirePass, "", "requirepass", "SECRET", "password every connection must AUTH with, on the socket and TCP (visible in ps: prefer --requirepass-file)")
	v(&t.requirePassFile, "", "requirepass-file", "FILE", "read the password from FILE (surrounding white space trimmed)")
	v(&t.dataDir, "./tiercache-data", "data-dir", "DIR", "L2 (Pebble) directory and local state")
	v(&t.memMax, "1GiB", "mem-max", "SIZE", "L1 (memory) capacity: 512MiB, 2GiB, 1.5GB or bytes")
	v(&t.diskMax, "10GiB", "disk-max", "SIZE", "L2 capacity: the data directory never grows past it by more than 10%")
	v(&t.maxValue, "64MiB", "max-value", "SIZE", "largest value accepted")
	v(&t.writePolicy, "through", "write-policy", "through|back", "through: every SET reaches L2 within --flush-interval; back: L2 receives entries when L1 evicts them and at shutdown")
	v(&t.eviction, policy.Default.String(), "eviction", strings.Join(policy.Names(), "|"), "which entries L1 keeps, and so which L2 gets: s3fifo keeps what is read again and writes none of the one-time entries to a full L2 (see README); lru, lfu (sampled, as Redis') and fifo demote every entry L1 evicts")
	v(&t.flush, "200ms", "flush-interval", "DURATION", "longest an acknowledged write-through SET waits before it is durable in L2")
	v(&t.nats, natsEmbedded, "nats", "URL|embedded|off", "embedded: in-process NATS server with JetStream; a URL list: join that NATS cluster; off: standalone")
	v(&t.natsListen, "127.0.0.1:4222", "nats-listen", "ADDR", "client address of the embedded NATS server (port 0: a free port)")
	v(&t.natsCreds, "", "nats-creds", "FILE", "NATS credentials file")
	v(&t.natsNKey, "", "nats-nkey", "FILE", "file holding a NATS NKey user seed (SU...)")
	v(&t.natsUser, "", "nats-user", "USER", "NATS user")
	v(&t.natsPassword, "", "nats-password", "PASSWORD", "NATS password")
	v(&t.natsTLSCA, "", "nats-tls-ca", "FILE", "CA certificate to verify the NATS servers with")
	v(&t.natsTLSCert, "", "nats-tls-cert", "FILE", "client certificate for NATS")
	v(&t.natsTLSKey, "", "nats-tls-key", "FILE", "client key for NATS")
	v(&t.modelsBucket, "tiercache-models", "models-bucket", "NAME", "JetStream KeyValue bucket that holds the model registry")
	v(&t.modelsReplicas, "1", "models-replicas", "N", "replicas of the registry and members buckets when this daemon creates them (3 for a 3-node NATS cluster)")
	v(&t.node, defaultNodeID(), "node-id", "ID", "this daemon's name in the cluster")
	v(&t.peerListen, "", "peer-listen", "ADDR", "TCP address this daemon serves its peers on; setting it joins the fleet cache, which needs --nats (port 0: a free port, logged; default off)")
	v(&t.peerAdvertise, "", "peer-advertise", "ADDR", "address other daemons dial to reach --peer-listen (default: that address; required when it is 0.0.0.0 or ::)")
	v(&t.peerPassword, "", "peer-password", "SECRET", "password peers authenticate with (visible in ps: prefer --peer-password-file)")
	v(&t.peerPassFile, "", "peer-password-file", "FILE", "read the peer password from FILE (surrounding white space trimmed)")
	v(&t.peerTLSCert, "", "peer-tls-cert", "FILE", "certificate for mutual TLS between peers (with --peer-tls-key and --peer-tls-ca)")
	v(&t.peerTLSKey, "", "peer-tls-key", "FILE", "key of --peer-tls-cert")
	v(&t.peerTLSCA, "", "peer-tls-ca", "FILE", "CA certificate peers' certificates must be signed by")
	v(&t.peerTimeout, defaultPeerTimeout.String(), "peer-timeout", "DURATION", "longest a lookup waits on a key's owner before it is a local miss; after a failure the daemon stops asking that peer until it answers a ping")
	v(&t.metrics, "", "metrics", "ADDR", "HTTP listener with /metrics (Prometheus) and /healthz (default off)")
	v(&t.maxClients, "10000", "max-clients", "N", "most client connections at once; more are refused")
	v(&t.maxLeases, "100000", "max-leases", "N", "most leases and lease waiters held at once (each counts 512 bytes in the memory bound); past it LEASE.GET and LEASE.MGET answer an error")
	v(&t.hugePages, "yes", "huge-pages", "yes|no", "yes: ask the kernel for transparent huge pages behind L1's large records, which makes filling L1 (after a restart, a flush) several times faster where page faults are dear; no: leave pages to the system's setting")
	v(&t.threads, "auto", "threads", "N", "threads running the daemon's Go code at once (GOMAXPROCS); auto: half the CPUs (its clients run on the same host), at least 2 where there are 2")
	v(&t.shutdown, "10s", "shutdown-timeout", "DURATION", "how long in-flight commands may run once a shutdown begins")
	v(&t.logLevel, "info", "log-level", "LEVEL", "debug, info, warn or error")
	v(&t.logFormat, "console", "log-format", "json|console", "log format")
	fs.BoolVar(version, "version", false, "print the version and exit")
	return fs
}

// yesNo parses the value of a yes|no flag.
func yesNo(s string) (bool, error) {
	switch s {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, errors.New("want yes or no")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// parseFlags binds args, and for each flag they leave unset its
// TIERCACHE_* variable (lookupEnv), into a cli. Every bad value is
// reported at once in one error, naming each as it was given. environ (as
// os.Environ returns it) is only searched for misspelt variables.
// pflag.ErrHelp is returned for --help, with cli.usage set.
func parseFlags(args []string, lookupEnv func(string) (string, bool), environ []string) (*cli, error) {
	var t flagText
	c := &cli{}
	fs := newFlagSet(&t, &c.version)
	c.usage = usage(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.version {
		return c, nil
	}
	b := config.Bind(fs, envPrefix, lookupEnv, "version")
	b.Redact("requirepass", nil)
	b.Redact("nats-password", nil)
	b.Redact("peer-password", nil)
	b.Redact("nats", config.RedactNATSURLs)
	c.unknownEnv = config.UnknownEnv(fs, envPrefix, environ)
	if fs.NArg() > 0 {
		b.Add("", fmt.Errorf("unexpected argument %q (tiercached takes flags only)", fs.Arg(0)))
	}

	o := &c.opts
	o.Socket = t.socket
	b.Parse("socket-mode", func(s string) error {
		m, err := parseMode(s)
		o.SocketMode = m
		return err
	})
	o.TCP = t.tcp
	b.Parse("protected-mode", func(s string) error {
		yes, err := yesNo(s)
		o.Unprotected = !yes
		return err
	})
	b.Parse("huge-pages", func(s string) error {
		yes, err := yesNo(s)
		o.NoHugePages = !yes
		return err
	})
	switch {
	case b.Given("requirepass") && b.Given("requirepass-file"):
		b.Fail("requirepass-file", fmt.Errorf("give either it or %s, not both", b.Source("requirepass")))
	case b.Given("requirepass-file"):
		b.Parse("requirepass-file", func(path string) error {
			pass, err := readPassword(path)
			o.RequirePass = pass
			return err
		})
	default:
		o.RequirePass = t.requirePass
	}
	o.DataDir = t.dataDir
	b.Size("mem-max", &o.MemMax)
	b.Size("disk-max", &o.DiskMax)
	b.Size("max-value", &o.MaxValue)
	o.maxValueDefault = !b.Given("max-value")
	b.Parse("write-policy", func(s string) error {
		p, err := tier.ParseWritePolicy(s)
		if err != nil {
			return errors.New("want through or back")
		}
		o.WritePolicy = p
		return nil
	})
	b.Parse("eviction", func(s string) error {
		p, err := policy.Parse(s)
		if err != nil {
			return fmt.Errorf("want one of %s", strings.Join(policy.Names(), ", "))
		}
		o.Eviction = p
		return nil
	})
	b.Duration("flush-interval", &o.FlushInterval)
	o.NATS = t.nats
	o.NATSListen = t.natsListen
	o.NATSCreds, o.NATSUser, o.NATSPassword = t.natsCreds, t.natsUser, t.natsPassword
	o.NATSNKey = t.natsNKey
	o.NATSTLSCA, o.NATSTLSCert, o.NATSTLSKey = t.natsTLSCA, t.natsTLSCert, t.natsTLSKey
	o.ModelsBucket = t.modelsBucket
	o.NodeID = t.node
	o.Metrics = t.metrics
	o.PeerListen, o.PeerAdvertise = t.peerListen, t.peerAdvertise
	o.PeerTLSCert, o.PeerTLSKey, o.PeerTLSCA = t.peerTLSCert, t.peerTLSKey, t.peerTLSCA
	b.Duration("peer-timeout", &o.PeerTimeout)
	switch {
	case b.Given("peer-password") && b.Given("peer-password-file"):
		b.Fail("peer-password-file", fmt.Errorf("give either it or %s, not both", b.Source("peer-password")))
	case b.Given("peer-password-file"):
		b.Parse("peer-password-file", func(path string) error {
			pass, err := readPassword(path)
			o.PeerPassword = pass
			return err
		})
	default:
		o.PeerPassword = t.peerPassword
	}
	b.Int("max-clients", &o.MaxClients)
	b.Int("max-leases", &o.MaxLeases)
	b.Parse("threads", func(s string) error {
		if s == "auto" {
			o.Threads = 0
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return errors.New("want auto or a whole number of at least 1")
		}
		o.Threads = n
		return nil
	})
	b.Int("models-replicas", &o.ModelsReplicas)
	b.Duration("shutdown-timeout", &o.ShutdownTimeout)
	b.Parse("log-level", func(s string) error {
		l, err := zapcore.ParseLevel(s)
		if err != nil || l > zapcore.ErrorLevel {
			return errors.New("want debug, info, warn or error")
		}
		c.logLevel = l
		return nil
	})
	b.Parse("log-format", func(s string) error {
		if s != "json" && s != "console" {
			return errors.New("want json or console")
		}
		c.logFormat = s
		return nil
	})
	o.SetMemoryLimit = true
	o.SetThreads = true
	b.Check(o.Validate())
	return c, b.Err()
}

// parseMode parses an octal file mode: "0660", "660" or "0o660".
func parseMode(s string) (fs.FileMode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil || t == "" {
		return 0, errors.New("not an octal mode such as 0660")
	}
	if n > 0o777 {
		return 0, errors.New("not a permission mode in 0000-0777")
	}
	return fs.FileMode(n), nil
}

// readPassword reads a password file. Surrounding white space is trimmed,
// the final newline an editor adds above all.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", pathErr(err)
	}
	pass := strings.TrimSpace(string(b))
	if pass == "" {
		return "", errors.New("the file holds no password")
	}
	return pass, nil
}

func usage(fs *pflag.FlagSet) string {
	return `Usage: tiercached [flags]

tiercached is the tiercache daemon: a two-tier (memory, then disk) cache
served over the Redis protocol on a Unix socket and, optionally, TCP.

Every flag can also be set with an environment variable TIERCACHE_<NAME>
(upper case, '-' as '_', e.g. TIERCACHE_MEM_MAX); a flag given on the
command line wins over its variable, and an empty variable counts as unset.
Sizes take KiB/MiB/GiB/TiB (powers of 1024), KB/MB/GB/TB (powers of 1000)
or plain bytes; durations use Go syntax (200ms, 5s, 1m30s).

Flags:
` + fs.FlagUsagesWrapped(100)
}
