package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
	"github.com/tiercache/tiercache/invalidation"
	"github.com/tiercache/tiercache/tier"
)

// exitError carries the exit status of a failed command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// quiet discards go-redis' own log lines (dial retries): tierctl reports
// errors itself, once.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quiet{})
	err := run(context.Background(), os.Args[1:], os.Stdout)
	if err == nil {
		return
	}
	code := 2
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(os.Stderr, "tierctl: "+err.Error())
	os.Exit(code)
}

type options struct {
	socket, natsURL, bucket, members string
	creds, user, password            string
	nkey                             string
	tlsCA, tlsCert, tlsKey           string
	timeout, wait                    time.Duration
}

const usage = `usage: tierctl [--socket PATH] [--nats URL] COMMAND
commands:
  rollout MODEL VERSION [--wait DUR]
  models
  purge MODEL
  stats
  members
`

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := pflag.NewFlagSet("tierctl", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.socket, "socket", envOr("TIERCACHE_SOCKET", "/tmp/tiercache.sock"), "daemon socket")
	fs.StringVar(&o.natsURL, "nats", os.Getenv("TIERCACHE_NATS"), "NATS URL list (default: the daemon's)")
	fs.StringVar(&o.bucket, "models-bucket", envOr("TIERCACHE_MODELS_BUCKET", "tiercache-models"), "model registry bucket")
	fs.StringVar(&o.members, "members-bucket", invalidation.DefaultMembersBucket, "membership bucket")
	fs.StringVar(&o.creds, "nats-creds", os.Getenv("TIERCACHE_NATS_CREDS"), "NATS credentials file")
	fs.StringVar(&o.nkey, "nats-nkey", os.Getenv("TIERCACHE_NATS_NKEY"), "file holding a NATS NKey user seed")
	fs.StringVar(&o.user, "nats-user", os.Getenv("TIERCACHE_NATS_USER"), "NATS user")
	fs.StringVar(&o.password, "nats-password", os.Getenv("TIERCACHE_NATS_PASSWORD"), "NATS password")
	fs.StringVar(&o.tlsCA, "nats-tls-ca", os.Getenv("TIERCACHE_NATS_TLS_CA"), "NATS TLS CA file")
	fs.StringVar(&o.tlsCert, "nats-tls-cert", os.Getenv("TIERCACHE_NATS_TLS_CERT"), "NATS TLS certificate")
	fs.StringVar(&o.tlsKey, "nats-tls-key", os.Getenv("TIERCACHE_NATS_TLS_KEY"), "NATS TLS key")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit for talking to the daemon and NATS")
	fs.DurationVar(&o.wait, "wait", 0, "rollout: wait this long for every live daemon to apply it")
	help := fs.BoolP("help", "h", false, "show usage")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err.Error() + "\n" + usage}
	}
	if *help {
		fmt.Fprint(out, usage+"\nflags:\n"+fs.FlagUsages())
		return nil
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return &exitError{2, "no command\n" + usage}
	}
	c := &ctl{o: o, out: out}
	defer c.close()
	switch cmd, a := rest[0], rest[1:]; {
	case cmd == "rollout" && len(a) == 2:
		return c.rollout(ctx, a[0], a[1])
	case cmd == "purge" && len(a) == 1:
		return c.purge(ctx, a[0])
	case cmd == "models" && len(a) == 0:
		return c.models(ctx)
	case cmd == "stats" && len(a) == 0:
		return c.stats(ctx)
	case cmd == "members" && len(a) == 0:
		return c.members(ctx)
	default:
		return &exitError{2, fmt.Sprintf("bad command %q\n%s", strings.Join(rest, " "), usage)}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ctl holds the connections a command opened.
type ctl struct {
	o   options
	out io.Writer
	rdb *redis.Client
	nc  *nats.Conn
	js  jetstream.JetStream

	perms invalidation.PermissionWatch // fails a refused publish at once
}

func (c *ctl) close() {
	if c.rdb != nil {
		c.rdb.Close()
	}
	if c.nc != nil {
		c.nc.Close()
	}
}

func (c *ctl) daemon() *redis.Client {
	if c.rdb == nil {
		c.rdb = redis.NewClient(&redis.Options{Network: "unix", Addr: c.o.socket, Password: os.Getenv("TIERCACHE_REQUIREPASS"),
			DialTimeout: c.o.timeout, ReadTimeout: c.o.timeout, WriteTimeout: c.o.timeout, MaxRetries: 0})
	}
	return c.rdb
}

// info returns the daemon's INFO fields.
func (c *ctl) info(ctx context.Context, section string) (map[string]string, error) {
	txt, err := c.daemon().Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("daemon at %s: %w", c.o.socket, err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// jetstream connects to NATS: --nats if given, else the daemon's nats_url.
// It returns nil, nil when neither names a NATS server (standalone daemon).
func (c *ctl) jetstream(ctx context.Context) (jetstream.JetStream, error) {
	if c.js != nil {
		return c.js, nil
	}
	url := c.o.natsURL
	if url == "" {
		m, err := c.info(ctx, "cluster")
		if err != nil {
			return nil, err
		}
		url = m["nats_url"]
		if b := m["models_bucket"]; b != "" && c.o.bucket == "tiercache-models" {
			c.o.bucket = b
		}
		if b := m["members_bucket"]; b != "" {
			c.o.members = b
		}
		if url == "" {
			return nil, nil
		}
	}
	opts := []nats.Option{nats.Name("tierctl"), nats.Timeout(c.o.timeout),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.perms.Handle(err) })}
	if c.o.creds != "" {
		opts = append(opts, nats.UserCredentials(c.o.creds))
	}
	if c.o.nkey != "" {
		opts = append(opts, invalidation.NKeyOption(c.o.nkey))
	}
	if c.o.user != "" {
		opts = append(opts, nats.UserInfo(c.o.user, c.o.password))
	}
	if c.o.tlsCA != "" {
		opts = append(opts, nats.RootCAs(c.o.tlsCA))
	}
	if c.o.tlsCert != "" {
		opts = append(opts, nats.ClientCert(c.o.tlsCert, c.o.tlsKey))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("NATS %s: %w", invalidation.RedactURLs(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.nc, c.js = nc, js
	return js, nil
}

func (c *ctl) kv(ctx context.Context) (jetstream.KeyValue, error) {
	js, err := c.jetstream(ctx)
	if err != nil || js == nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, c.o.bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", c.o.bucket, err)
	}
	return kv, nil
}

// publisher publishes to the registry bucket over the NATS connection.
func (c *ctl) publisher() *invalidation.Publisher {
	return &invalidation.Publisher{JS: c.js, Bucket: c.o.bucket, Perms: &c.perms}
}

// rollout is "rollout MODEL VERSION": the arguments are checked here, as
// they are parsed (tier.NewRollout), and the checked change is published.
func (c *ctl) rollout(ctx context.Context, model, version string) error {
	ch, err := tier.NewRollout(model, version)
	if err != nil {
		return &exitError{2, err.Error()}
	}
	rev, published, err := c.change(ctx, model+" "+version, []any{"MODEL.ROLLOUT", model, version},
		func(ctx context.Context, p *invalidation.Publisher) (uint64, error) {
			return p.Rollout(ctx, ch)
		})
	if err != nil || !published {
		return err
	}
	return c.waitApplied(ctx, rev)
}

// purge is "purge MODEL", MODEL checked as rollout's.
func (c *ctl) purge(ctx context.Context, model string) error {
	ch, err := tier.NewPurge(model)
	if err != nil {
		return &exitError{2, err.Error()}
	}
	_, _, err = c.change(ctx, model+" purged", []any{"MODEL.PURGE", model},
		func(ctx context.Context, p *invalidation.Publisher) (uint64, error) {
			return p.Purge(ctx, ch)
		})
	return err
}

// change makes one change to the model registry within --timeout: through
// the registry bucket (publish) when there is one, else by sending cmd to
// the daemon, as a standalone daemon is the whole cluster. It prints what
// and the registry revision of the change, and reports whether it was
// published: only then is there a cluster to wait for.
func (c *ctl) change(ctx context.Context, what string, cmd []any,
	publish func(context.Context, *invalidation.Publisher) (uint64, error)) (rev uint64, published bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	kv, err := c.kv(ctx)
	if err != nil {
		return 0, false, err
	}
	if kv == nil {
		n, err := c.daemon().Do(ctx, cmd...).Int64()
		if err != nil {
			return 0, false, err
		}
		fmt.Fprintf(c.out, "%s %d\n", what, n)
		return 0, false, nil
	}
	rev, err = publish(ctx, c.publisher())
	if err != nil {
		return 0, false, err
	}
	fmt.Fprintf(c.out, "%s %d\n", what, rev)
	return rev, true, nil
}

// waitApplied implements --wait: every live daemon must apply rev in time.
func (c *ctl) waitApplied(ctx context.Context, rev uint64) error {
	if c.o.wait <= 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.o.wait)
	defer cancel()
	missing, err := invalidation.WaitAppliedIn(wctx, c.js, c.o.members, rev)
	if len(missing) > 0 {
		sort.Strings(missing)
		return &exitError{1, fmt.Sprintf("revision %d not applied within %v by: %s", rev, c.o.wait, strings.Join(missing, ", "))}
	}
	if err != nil {
		return &exitError{1, fmt.Sprintf("waiting for revision %d: %v", rev, err)}
	}
	fmt.Fprintf(c.out, "applied by every live daemon\n")
	return nil
}

func (c *ctl) models(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	kv, err := c.kv(cctx)
	if err != nil {
		return err
	}
	type row struct {
		model, version string
		rev            uint64
	}
	var rows []row
	if kv == nil {
		vals, err := c.daemon().Do(cctx, "MODEL.LIST").StringSlice()
		if err != nil {
			return err
		}
		m, err := c.info(cctx, "cluster")
		if err != nil {
			return err
		}
		rev, _ := strconv.ParseUint(m["models_revision"], 10, 64)
		for i := 0; i+1 < len(vals); i += 2 {
			rows = append(rows, row{vals[i], vals[i+1], rev})
		}
	} else {
		keys, err := kv.ListKeys(cctx)
		if err != nil {
			return err
		}
		for k := range keys.Keys() {
			e, err := kv.Get(cctx, k)
			if err != nil {
				continue // deleted meanwhile
			}
			model, err := invalidation.DecodeModel(k)
			if err != nil {
				model = k
			}
			rows = append(rows, row{model, string(e.Value()), e.Revision()})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].model < rows[j].model })
	for _, r := range rows {
		fmt.Fprintf(c.out, "%s %s %d\n", r.model, r.version, r.rev)
	}
	return nil
}

func (c *ctl) stats(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	m, err := c.info(cctx, "everything")
	if err != nil {
		return err
	}
	n := func(k string) float64 { v, _ := strconv.ParseFloat(m[k], 64); return v }
	rate := func(h, miss string) string {
		if t := n(h) + n(miss); t > 0 {
			return fmt.Sprintf("%.1f%%", 100*n(h)/t)
		}
		return "-"
	}
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(c.out, "node %s  tiercache %s  up %ss  write policy %s  clients %s\n\n",
		m["node_id"], m["tiercache_version"], m["uptime_in_seconds"], m["write_policy"], m["connected_clients"])
	fmt.Fprintln(tw, "tier\thits\tmisses\thit rate\tkeys\tbytes\tmax bytes\tused\tevictions\t")
	fmt.Fprintf(tw, "L1\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m["l1_hits"], m["l1_misses"], rate("l1_hits", "l1_misses"),
		m["l1_keys"], human(n("l1_bytes")), human(n("l1_max_bytes")), pct(n("l1_bytes"), n("l1_max_bytes")), m["l1_evictions"])
	fmt.Fprintf(tw, "L2\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m["l2_hits"], m["l2_misses"], rate("l2_hits", "l2_misses"),
		m["l2_keys"], human(n("l2_bytes")), human(n("l2_max_bytes")), pct(n("l2_bytes"), n("l2_max_bytes")), m["l2_evictions"])
	fmt.Fprintf(tw, "all\t%s\t%s\t%s\t\t\t\t\t\t\n", m["keyspace_hits"], m["keyspace_misses"], rate("keyspace_hits", "keyspace_misses"))
	_, fleet := m["peer_listen"]
	if fleet {
		// Lookups that missed here and went to their owner: the peers'
		// hit rate, counting failures as misses.
		failed := n("peer_misses") + n("peer_errors") + n("peer_timeouts") + n("peer_skipped")
		m["peer_failed"] = strconv.FormatFloat(failed, 'f', 0, 64)
		fmt.Fprintf(tw, "peers\t%s\t%s\t%s\t\t\t\t\t\t\n", m["peer_hits"], m["peer_failed"], rate("peer_hits", "peer_failed"))
	}
	tw.Flush()
	if rows := modelRows(m); len(rows) > 0 {
		fmt.Fprintln(c.out)
		tw = tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "model\tversion\thits\tmisses\thit rate")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r[0], r[1], r[2], r[3], r[4])
		}
		tw.Flush()
	}
	fmt.Fprintf(c.out, "\npromotions %s  demotions %s  corrupt %s  L2 errors %s  pending writes %s  stale writes refused %s\n",
		m["promotions"], m["demotions"], m["l2_corrupt_entries"], m["l2_errors"], human(n("pending_write_bytes")), m["rejected_stale_writes"])
	fmt.Fprintf(c.out, "NATS connected %s  models %s  registry revision %s  rollouts applied %s\n",
		m["nats_connected"], m["models_known"], m["models_revision"], m["rollouts_applied"])
	if fleet {
		fmt.Fprintf(c.out, "fleet: peer address %s  peers %s (live %s)  peer errors %s  timeouts %s  fenced %s  sets forwarded %s  dropped %s  served to peers %s\n",
			m["peer_listen"], m["peers"], m["peers_live"], m["peer_errors"], m["peer_timeouts"], m["peer_fenced"],
			m["peer_sets_forwarded"], m["peer_sets_dropped"], m["peer_served"])
	}
	return nil
}

// modelRows are the per-model lookup counts of INFO's # Models section
// (model_NAME:version=V,hits=H,misses=M,hit_ratio=R, then unscoped: and
// unregistered:), one row each — model, version, hits, misses, hit rate —
// models by name, then unscoped and unregistered keys.
func modelRows(m map[string]string) [][5]string {
	row := func(name, v string) [5]string {
		f := map[string]string{}
		for _, kv := range strings.Split(v, ",") {
			if k, x, ok := strings.Cut(kv, "="); ok {
				f[k] = x
			}
		}
		if u, err := url.PathUnescape(name); err == nil {
			name = u
		}
		version, _ := url.PathUnescape(f["version"])
		rate := "-"
		h, _ := strconv.ParseFloat(f["hits"], 64)
		if ms, _ := strconv.ParseFloat(f["misses"], 64); h+ms > 0 {
			rate = fmt.Sprintf("%.1f%%", 100*h/(h+ms))
		}
		return [5]string{name, version, f["hits"], f["misses"], rate}
	}
	var rows [][5]string
	for k, v := range m {
		if name, ok := strings.CutPrefix(k, "model_"); ok && strings.HasPrefix(v, "version=") {
			rows = append(rows, row(name, v))
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	for _, k := range []string{"unscoped", "unregistered"} {
		if v, ok := m[k]; ok && strings.HasPrefix(v, "hits=") {
			rows = append(rows, row("("+k+")", v))
		}
	}
	return rows
}

func pct(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

func human(v float64) string {
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if v < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%.0f%s", v, u)
			}
			return fmt.Sprintf("%.1f%s", v, u)
		}
		v /= 1024
	}
	return ""
}
