package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/internal/config"
	"github.com/tiercache/tiercache/internal/hugepage"
	"github.com/tiercache/tiercache/internal/metrics"
	"github.com/tiercache/tiercache/invalidation"
	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/server"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap"
)

// errDataDirLocked: another process holds the data directory's Pebble
// LOCK file, so another daemon runs on it.
var errDataDirLocked = errors.New("locked by another daemon")

// daemon is one tiercached: the cache (L1 and L2 composed), the RESP server
// on the Unix socket and the optional TCP address, and the optional metrics
// endpoint. newDaemon acquires everything that can fail; startServing only
// launches the serving goroutines; shutdown releases it all, in order.
type daemon struct {
	opts options
	log  *zap.Logger

	cache    *tier.Hybrid
	l2       *disktier.Store // the cache's L2, for its memory bound
	fleet    *fleet          // nil outside a fleet (--peer-listen)
	leases   *lease.Table    // the RESP server's and the peer server's
	memBound int64           // memoryBound, as INFO memory_bound reports it
	cluster  cluster
	srv      *server.Server
	sock     *unixSocket
	tcp      net.Listener // nil without --tcp

	metricsLn  net.Listener // nil without --metrics
	metricsSrv *http.Server
	healthy    atomic.Bool // /healthz: serving and not shutting down

	memLimit string // what was done about the Go memory limit, for the log
	threads  string // what was done about GOMAXPROCS, for the log
	notes    []string

	wg    sync.WaitGroup // the serving goroutines
	errc  chan error     // a serving goroutine's unexpected failure; room for all three
	start sync.Once

	shutdownOnce sync.Once
	shutdownErr  error
}

// newDaemon opens the cache and binds every listener. Each start-up error
// is one line naming the problem. On error nothing is left open, and
// nothing of another daemon's is touched: the socket is created only once
// the data directory is locked, and never replaces a live daemon's.
func newDaemon(opts options) (*daemon, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	d := &daemon{opts: opts, log: opts.Logger, errc: make(chan error, 3)}
	var undo []func()
	fail := func(err error) (*daemon, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}

	// Listeners first: binding them has no side effect to undo.
	if opts.Metrics != "" {
		ln, err := net.Listen("tcp", opts.Metrics)
		if err != nil {
			return fail(listenErr("--metrics", opts.Metrics, err))
		}
		d.metricsLn = ln
		undo = append(undo, func() { ln.Close() })
	}
	if opts.TCP != "" {
		ln, err := net.Listen("tcp", opts.TCP)
		if err != nil {
			return fail(listenErr("--tcp", opts.TCP, err))
		}
		d.tcp = ln
		undo = append(undo, func() { ln.Close() })
	}
	// Refuse a live daemon's socket, or one that cannot be created,
	// before touching any data directory.
	if dir := filepath.Dir(opts.Socket); !isDir(dir) {
		return fail(fmt.Errorf("socket %s: directory %s does not exist", opts.Socket, dir))
	}
	if _, err := inspectSocket(opts.Socket); err != nil {
		return fail(err)
	}

	d.setThreads()
	hugepage.SetEnabled(!opts.NoHugePages)
	if err := d.openCache(); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { _ = d.cache.Close() })

	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.NewCollector(d.cache.Stats, d.cache.ModelStats))
	d.leases = lease.New(lease.Options{Max: opts.MaxLeases})
	if opts.PeerListen != "" {
		f, err := d.openFleet()
		if err != nil {
			return fail(err)
		}
		d.fleet = f
		undo = append(undo, func() {
			// Nothing was served: nothing is queued.
			f.close(context.Background())
		})
		reg.MustRegister(metrics.NewPeerCollector(f.info))
	}
	cl, err := d.openCluster()
	if err != nil {
		return fail(err)
	}
	d.cluster = cl
	if cl.close != nil {
		undo = append(undo, func() { _ = cl.close() })
	}
	if opts.NATS != natsOff {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tiercache_nats_connected",
			Help: "1 while the daemon is connected to NATS, 0 while it is not.",
		}, func() float64 { return float64(b2f(cl.info().NATSConnected)) }))
	}
	var cache server.Cache = d.cache
	var peers func() server.PeersInfo
	var leaser server.Leaser
	if d.fleet != nil {
		cache, peers, leaser = d.fleet.cache, d.fleet.info, d.fleet.cache
	}
	sopts := server.Options{
		Cache:           cache,
		Peers:           peers,
		Models:          d.cluster.models,
		Cluster:         d.cluster.info,
		Sync:            d.cluster.sync,
		MaxValue:        opts.MaxValue,
		RequirePass:     opts.RequirePass,
		MaxClients:      opts.MaxClients,
		MaxLeases:       opts.MaxLeases,
		MaxmemoryPolicy: opts.Eviction.RedisName(),
		Leases:          d.leases,
		Leaser:          leaser, // leases of keys other members own are taken there
		Logger:          d.log.Named("server"),
		Registerer:      reg,
		Version:         opts.Version,
		NodeID:          opts.NodeID,
	}
	d.memBound = d.memoryBound(sopts.InflightBytes(), sopts.LeaseMemory())
	sopts.MemoryBound = d.memBound
	d.setMemoryLimit(sopts.InflightBytes(), sopts.LeaseMemory())
	srv, err := server.New(sopts)
	if err != nil {
		return fail(fmt.Errorf("server: %w", err))
	}
	d.srv = srv

	// Last, as it is the step other daemons and clients see.
	sock, err := listenUnix(opts.Socket, opts.SocketMode)
	if err != nil {
		return fail(err)
	}
	d.sock = sock

	if d.metricsLn != nil {
		d.metricsSrv = &http.Server{
			Handler:           metrics.Handler(reg, d.healthy.Load),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          zap.NewStdLog(d.log.Named("metrics")),
		}
	}
	return d, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// listenErr is the start-up error of a listener: "--tcp ADDR: address
// already in use".
func listenErr(flag, addr string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = errno
	}
	return fmt.Errorf("%s %s: %w", flag, addr, err)
}

// setThreads sets GOMAXPROCS from --threads (see options.Threads), unless
// the GOMAXPROCS variable is set.
func (d *daemon) setThreads() {
	d.threads = applyRuntime(d.opts.SetThreads, "GOMAXPROCS", func() string {
		n := d.opts.Threads
		if n == 0 {
			n = autoThreads(runtime.NumCPU())
		}
		runtime.GOMAXPROCS(n)
		return strconv.Itoa(n)
	})
}

// applyRuntime applies a process-wide runtime setting with apply, unless
// the daemon is not to (in-process tests) or the variable env sets it (the
// runtime has applied that already). It returns what was done, for the log.
func applyRuntime(enabled bool, env string, apply func() string) string {
	switch {
	case !enabled:
		return "unchanged"
	case os.Getenv(env) != "":
		return env + "=" + os.Getenv(env)
	default:
		return apply()
	}
}

// autoThreads is --threads auto on a host of cpus CPUs: half of them, but
// at least 2 where there are 2, so that the write queue's flusher and
// Pebble's commit pipeline run beside the connections (see options.Threads).
func autoThreads(cpus int) int { return min(cpus, max(2, cpus/2)) }

// setMemoryLimit sets the Go heap's soft limit to the part of the memory
// bound (see memoryBound) that lives in the Go heap: request arguments in
// flight, the leases, L1 (its records are Go allocations), the write queue
// and Pebble's batches, plus Pebble's block cache and memtables when Pebble allocates
// them there (builds without cgo). The garbage collector then works harder
// rather than letting replaced records and freed buffers push the RSS past
// the bound, and never runs flat out for memory the bound allows.
// GOMEMLIMIT, when set, wins: the runtime has applied it already.
func (d *daemon) setMemoryLimit(inflight, leases int64) {
	d.memLimit = applyRuntime(d.opts.SetMemoryLimit, "GOMEMLIMIT", func() string {
		l1 := d.l1Options(nil)
		limit := d.goMemoryLimit(inflight) + leases + d.fleetMemory() + l1.GhostMemory()
		debug.SetMemoryLimit(limit)
		return fmt.Sprintf("%.1fMiB", float64(limit)/(1<<20))
	})
}

// goMemoryLimit is the Go heap's part of the memory bound: the bound less
// 32 MiB of slack for the runtime's own memory, less Pebble's block cache and
// memtables when they are allocated outside the Go heap.
func (d *daemon) goMemoryLimit(inflight int64) int64 {
	pending, batch := d.cache.QueueLimits()
	limit := inflight + tier.GoMemoryLimit(d.opts.MemMax) + pending + d.cache.Buffers().MaxBytes()
	manual := d.l2.MemoryBound(0) - d.l2.RefsMemory() // block cache and memtables
	limit += d.l2.MemoryBound(max(batch, d.opts.MaxValue)) - manual
	if !cgoEnabled {
		limit += manual
	}
	return limit
}

// openCache opens L1, L2 and their composition into d.cache.
func (d *daemon) openCache() error {
	o := &d.opts
	if err := checkDataDir(o.DataDir); err != nil {
		return err
	}
	bufs := bufpool.New(bufpool.Options{MaxBytes: poolBytes(o.MemMax)})
	l1, err := memtier.New(d.l1Options(bufs))
	if err != nil {
		return fmt.Errorf("--mem-max: %w", err)
	}
	diskLog := d.log.Named("disktier")
	diskLimit := newLogLimiter(time.Second)
	l2, err := disktier.Open(disktier.Options{
		Dir:      filepath.Join(o.DataDir, l2Dir),
		MaxBytes: o.DiskMax,
		// Keyed by format: a damaged disk can report the same fault for
		// every read.
		Logger: func(format string, args ...any) {
			if ok, n := diskLimit.allow(format); ok {
				diskLine(diskLog, fmt.Sprintf(format, args...), suppressed(n))
			}
		},
	})
	if err != nil {
		_ = l1.Close()
		return dataDirErr(o.DataDir, err)
	}
	cacheLog := d.log.Named("cache")
	cacheLimit := newLogLimiter(time.Second)
	h, err := tier.NewHybrid(tier.Options{
		L1:            l1,
		L2:            l2,
		WritePolicy:   o.WritePolicy,
		FlushInterval: o.FlushInterval,
		Buffers:       bufs,
		OnError: func(op string, err error) {
			if ok, n := cacheLimit.allow(op); ok {
				cacheLog.Warn("L2 "+op+" failed; the cache carries on from L1", append(suppressed(n), zap.Error(err))...)
			}
		},
	})
	if err != nil {
		_ = l1.Close()
		_ = l2.Close()
		return fmt.Errorf("data directory %s: %w", o.DataDir, err)
	}
	d.cache, d.l2 = h, l2
	return nil
}

// l1Options are L1's options: --mem-max, --eviction with a ghost sized
// for L1 and L2 together, and the recycled buffers.
func (d *daemon) l1Options(bufs *bufpool.Pool) memtier.Options {
	o := &d.opts
	return memtier.Options{MaxBytes: o.MemMax, Buffers: bufs, Eviction: o.Eviction, GhostBytes: o.MemMax + o.DiskMax}
}

// poolBytes is the most memory the pool of recycled value buffers keeps
// (see package bufpool): an eighth of --mem-max, between 8 and 64 MiB —
// room for a buffer per client at 16 clients × 4 MB values.
func poolBytes(memMax int64) int64 { return min(64<<20, max(8<<20, memMax/8)) }

// memoryBound is the bound on the daemon's resident memory documented in
// the README (Operations, "Memory"): request arguments in flight, L1 with
// its overhead (1.15 × --mem-max, as tier.GoMemoryLimit), the write queue,
// the recycled value buffers (poolBytes), Pebble's memory for batches as
// large as the flusher makes, the leases (--max-leases × lease.Bytes),
// a fleet member's peer requests and forward queue (fleetMemory), the
// eviction policy's ghost (memtier.Options.GhostMemory) and 64 MiB for
// the runtime, connections and everything else.
func (d *daemon) memoryBound(inflight, leases int64) int64 {
	pending, batch := d.cache.QueueLimits()
	l1 := d.l1Options(nil)
	return inflight + leases + d.fleetMemory() + l1.GhostMemory() + d.opts.MemMax*115/100 + pending + d.cache.Buffers().MaxBytes() + d.l2.MemoryBound(max(batch, d.opts.MaxValue)) + 64<<20
}

// fleetMemory is what peer fill holds in the Go heap: the peer server's
// requests and the client's queue of forwarded writes; 0 outside a fleet.
func (d *daemon) fleetMemory() int64 {
	if d.fleet == nil {
		return 0
	}
	return d.fleet.server.MemoryBound() + d.fleet.client.MemoryBound()
}

// diskLine logs a line of the disk tier. Its Logger hook has no levels:
// the lines Pebble reports as routine ("disktier: pebble: Found 0 WALs")
// are info, the disk tier's own (faults, failed evictions) warnings.
func diskLine(log *zap.Logger, msg string, fields []zap.Field) {
	if rest, ok := strings.CutPrefix(msg, "disktier: pebble: "); ok {
		log.Info("pebble: "+rest, fields...)
		return
	}
	log.Warn(strings.TrimPrefix(msg, "disktier: "), fields...)
}

// suppressed is the log field of lines a logLimiter held back, if any.
func suppressed(n uint64) []zap.Field {
	if n == 0 {
		return nil
	}
	return []zap.Field{zap.Uint64("suppressed", n)}
}

// checkDataDir creates dir if needed and checks that files can be created
// in it, so that the error names the directory rather than a Pebble file.
func checkDataDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("data directory %s exists and is not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data directory %s cannot be created: %w", dir, pathErr(err))
	}
	f, err := os.CreateTemp(dir, ".tiercached-probe-")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, pathErr(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// dataDirErr turns an error of disktier.Open into a start-up error. Pebble
// takes an fcntl lock on the directory's LOCK file; another process holding
// it makes the lock fail with EAGAIN (EACCES on some systems).
func dataDirErr(dir string, err error) error {
	var pe *fs.PathError
	locked := errors.Is(err, syscall.EAGAIN) ||
		errors.Is(err, syscall.EACCES) && !errors.As(err, &pe)
	switch {
	case locked:
		return fmt.Errorf("data directory %s is %w", dir, errDataDirLocked)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	return fmt.Errorf("data directory %s: %w", dir, err)
}

// The two model registries a daemon may use.
var (
	_ server.Models = (*tier.LocalRegistry)(nil)
	_ server.Models = (*invalidation.Cluster)(nil)
)

// cluster is what the daemon gets from its cluster: the model registry the
// MODEL.* commands go through and INFO's "# Cluster" section.
type cluster struct {
	models server.Models
	info   func() server.ClusterInfo
	// sync waits until the registry has caught up after a (re)connection
	// to NATS; the server calls it before model-scoped commands. Nil when
	// standalone.
	sync func(context.Context) error
	// close leaves the cluster; shutdown calls it once the server has
	// stopped and before the cache closes. Nil when standalone.
	close func() error
}

// Subdirectories of --data-dir.
const (
	l2Dir   = "l2"   // Pebble: the disk tier (bounded by --disk-max)
	natsDir = "nats" // the embedded NATS server's JetStream store
)

// openCluster joins the cluster named by --nats: it starts the embedded NATS
// server or connects to the given one (an unreachable server is not an
// error: the daemon serves the registry it persisted and keeps
// reconnecting), follows the model registry, and waits up to the sync
// timeout for it to catch up before the socket is opened. With --nats off
// the daemon is standalone.
func (d *daemon) openCluster() (cluster, error) {
	o := &d.opts
	if o.NATS == natsOff {
		return d.standalone(), nil
	}
	io := invalidation.Options{
		URLs:           o.NATS,
		EmbeddedListen: o.NATSListen,
		StoreDir:       filepath.Join(o.DataDir, natsDir),
		Creds:          o.NATSCreds,
		NKey:           o.NATSNKey,
		User:           o.NATSUser,
		Password:       o.NATSPassword,
		TLSCA:          o.NATSTLSCA,
		TLSCert:        o.NATSTLSCert,
		TLSKey:         o.NATSTLSKey,
		Bucket:         o.ModelsBucket,
		Replicas:       o.ModelsReplicas,
		NodeID:         o.NodeID,
		Version:        o.Version,
		Cache:          d.cache,
		Logger:         d.log.Named("cluster"),
		// A frozen daemon must stay a member for longer than an operator's
		// "tierctl rollout --wait", so that it is named rather than
		// forgotten.
		MemberTTL: 15 * time.Second,
	}
	if d.fleet != nil {
		io.PeerAddr, io.OnMembersChange = d.fleet.advertise, d.fleet.membersChanged
	}
	c, err := invalidation.Start(io)
	if err != nil {
		return cluster{}, fmt.Errorf("--nats: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.WaitSynced(ctx) // bounded by the cluster's sync timeout; logs when it gives up
	info := func() server.ClusterInfo {
		st := c.Status()
		return server.ClusterInfo{NATSConnected: st.NATSConnected, Extra: st.Fields()}
	}
	return cluster{models: c, info: info, sync: c.WaitSynced, close: c.Close}, nil
}

// standalone is the cluster of a daemon without NATS (--nats off): model
// changes apply to its cache only, each the next revision of its registry.
func (d *daemon) standalone() cluster {
	d.log.Named("cluster").Info("model registry is local: NATS is off", zap.Uint64("revision", d.cache.ModelsRevision()))
	extra := [][2]string{{"nats_mode", natsOff}, {"node_id", d.opts.NodeID}}
	return cluster{
		models: tier.NewLocalRegistry(d.cache.Registry),
		info:   func() server.ClusterInfo { return server.ClusterInfo{Extra: extra} },
	}
}

// startServing launches the serving goroutines and logs the start-up lines.
// It is called once.
func (d *daemon) startServing() {
	d.start.Do(func() {
		d.logConfig()
		for _, n := range d.notes {
			d.log.Info(n, zap.String("nats", config.RedactNATSURLs(d.opts.NATS)))
		}
		if d.sock.replacedStale {
			d.log.Info("removed a dead daemon's socket file", zap.String("socket", d.sock.path))
		}
		d.serve("socket", func() error { return d.srv.Serve(d.sock.ln) }, server.ErrServerClosed)
		fields := []zap.Field{zap.String("socket", d.sock.path)}
		if d.tcp != nil {
			d.serve("tcp", func() error { return d.srv.Serve(d.tcp) }, server.ErrServerClosed)
			fields = append(fields, zap.String("tcp", d.tcp.Addr().String()))
		}
		if d.fleet != nil {
			fields = append(fields, zap.String("peer_listen", d.fleet.server.Addr().String()), zap.String("peer_advertise", d.fleet.advertise))
		}
		if d.metricsSrv != nil {
			d.serve("metrics", func() error { return d.metricsSrv.Serve(d.metricsLn) }, http.ErrServerClosed)
			fields = append(fields, zap.String("metrics", d.metricsLn.Addr().String()))
		}
		d.healthy.Store(true)
		d.log.Info("ready", fields...)
	})
}

// serve runs fn in a goroutine of d; an error other than closed is a
// failure main stops the daemon for.
func (d *daemon) serve(name string, fn func() error, closed error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, closed) {
			d.errc <- fmt.Errorf("%s listener: %w", name, err)
		}
	}()
}

// failed delivers the first unexpected failure of a listener.
func (d *daemon) failed() <-chan error { return d.errc }

// logConfig logs the configuration in one line. Secrets are never logged:
// only whether they are set.
func (d *daemon) logConfig() {
	o := &d.opts
	set := func(s string) string {
		if s == "" {
			return "none"
		}
		return "set"
	}
	tcp := o.TCP
	if tcp == "" {
		tcp = "off"
	}
	met := o.Metrics
	if met == "" {
		met = "off"
	}
	fields := []zap.Field{
		zap.String("version", o.Version),
		zap.Int("pid", os.Getpid()),
		zap.String("node_id", o.NodeID),
		zap.String("socket", o.Socket),
		zap.String("socket_mode", fmt.Sprintf("%04o", uint32(o.SocketMode))),
		zap.String("tcp", tcp),
		zap.Bool("protected_mode", !o.Unprotected),
		zap.String("requirepass", set(o.RequirePass)),
		zap.String("data_dir", o.DataDir),
		zap.String("mem_max", config.FormatSize(o.MemMax)),
		zap.String("huge_pages", hugepage.State()),
		zap.String("transparent_hugepage", hugepage.Mode()),
		zap.String("disk_max", config.FormatSize(o.DiskMax)),
		zap.String("max_value", config.FormatSize(o.MaxValue)),
		zap.String("memory_bound", fmt.Sprintf("%.0fMiB", float64(d.memBound)/(1<<20))),
		zap.Stringer("write_policy", o.WritePolicy),
		zap.Stringer("eviction", o.Eviction),
		zap.Duration("flush_interval", o.FlushInterval),
		zap.String("nats", config.RedactNATSURLs(o.NATS)),
	}
	switch o.NATS {
	case natsOff:
	case natsEmbedded:
		fields = append(fields, zap.String("nats_listen", o.NATSListen))
	default:
		fields = append(fields,
			zap.String("nats_creds", set(o.NATSCreds)),
			zap.String("nats_nkey", set(o.NATSNKey)),
			zap.String("nats_user", set(o.NATSUser)),
			zap.String("nats_password", set(o.NATSPassword)),
			zap.Bool("nats_tls", o.NATSTLSCA != "" || o.NATSTLSCert != ""))
	}
	if o.NATS != natsOff {
		fields = append(fields, zap.String("models_bucket", o.ModelsBucket))
	}
	if o.PeerListen != "" {
		fields = append(fields,
			zap.String("peer_listen", o.PeerListen),
			zap.String("peer_password", set(o.PeerPassword)),
			zap.Bool("peer_tls", o.peerTLS()),
			zap.Duration("peer_timeout", o.PeerTimeout))
	}
	fields = append(fields,
		zap.String("metrics", met),
		zap.Int("max_clients", o.MaxClients),
		zap.String("go_memory_limit", d.memLimit),
		zap.String("threads", d.threads),
	)
	d.log.Info("starting", fields...)
	if o.Unprotected {
		for _, e := range o.unprotected() {
			d.log.Warn("protected mode is off: --"+e.flag+" "+e.addr+" accepts connections from other hosts without a password (give "+e.fix+")",
				zap.String("flag", "--"+e.flag), zap.String("addr", e.addr))
		}
	}
}

// shutdown stops the daemon gracefully: /healthz turns 503, the server
// stops accepting and lets in-flight commands finish (until ctx ends; then
// their connections are closed), the socket file is removed, a fleet
// member stops serving its peers, sends them the writes it still has for
// them (until ctx ends) and stops asking them, the daemon leaves the
// cluster, the cache
// writes L1-only entries down to L2 (write-back) and closes Pebble, and the
// metrics endpoint closes last. It is idempotent and returns the first
// error of each step. Running out of ctx is logged, not returned: the
// cache is still closed properly.
func (d *daemon) shutdown(ctx context.Context) error {
	d.shutdownOnce.Do(func() {
		d.healthy.Store(false)
		var errs []error
		if err := d.srv.Shutdown(ctx); err != nil {
			if ctx.Err() == nil {
				errs = append(errs, err)
			} else {
				d.log.Warn("in-flight commands did not finish in time; their connections were closed",
					zap.Duration("shutdown_timeout", d.opts.ShutdownTimeout))
			}
		}
		// The server closed the listeners it served; these close them if
		// startServing never ran.
		if d.tcp != nil {
			d.tcp.Close()
		}
		if err := d.sock.close(); err != nil {
			errs = append(errs, err)
		}
		if d.fleet != nil {
			d.fleet.close(ctx)
		}
		if d.cluster.close != nil {
			if err := d.cluster.close(); err != nil {
				errs = append(errs, fmt.Errorf("leaving the cluster: %w", err))
			}
		}
		if err := d.cache.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the cache: %w", err))
		}
		if d.metricsSrv != nil {
			mctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := d.metricsSrv.Shutdown(mctx); err != nil {
				d.metricsSrv.Close()
			}
			cancel()
			d.metricsLn.Close()
		}
		d.wg.Wait()
		d.shutdownErr = errors.Join(errs...)
	})
	return d.shutdownErr
}

func b2f(b bool) int {
	if b {
		return 1
	}
	return 0
}
