package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/tiercache/tiercache/internal/config"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "natsd: "+err.Error())
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	name := fs.String("name", "", "server name, unique in the cluster (default: host name)")
	listen := fs.String("listen", "127.0.0.1:4222", "client address (port 0: a free port)")
	httpAddr := fs.String("http", "", "monitoring address with /healthz and /jsz (default off)")
	clusterName := fs.String("cluster-name", "", "cluster name; required with --cluster")
	clusterAddr := fs.String("cluster", "", "route listen address, e.g. 127.0.0.1:6222 (default: no cluster)")
	routes := fs.String("routes", "", "comma-separated route URLs of the other nodes (nats-route://host:port)")
	storeDir := fs.String("store-dir", "", "JetStream store directory (required)")
	jsMaxMem := fs.String("js-max-mem", "256MiB", "JetStream memory storage limit")
	jsMaxFile := fs.String("js-max-file", "1GiB", "JetStream file storage limit")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	o := &server.Options{
		ServerName: *name,
		JetStream:  true,
		StoreDir:   *storeDir,
		Debug:      *debug,
		Logtime:    true,
		NoSigs:     true, // signals are handled below, so that shutdown is graceful
	}
	var problems []error
	var err error
	if o.Host, o.Port, err = hostPort(*listen); err != nil {
		problems = append(problems, fmt.Errorf("--listen %q: %w", *listen, err))
	}
	if *httpAddr != "" {
		if o.HTTPHost, o.HTTPPort, err = hostPort(*httpAddr); err != nil {
			problems = append(problems, fmt.Errorf("--http %q: %w", *httpAddr, err))
		}
	}
	if o.StoreDir == "" {
		problems = append(problems, errors.New("--store-dir is required"))
	}
	if o.JetStreamMaxMemory, err = config.ParseSize(*jsMaxMem); err != nil {
		problems = append(problems, fmt.Errorf("--js-max-mem %q: %w", *jsMaxMem, err))
	}
	if o.JetStreamMaxStore, err = config.ParseSize(*jsMaxFile); err != nil {
		problems = append(problems, fmt.Errorf("--js-max-file %q: %w", *jsMaxFile, err))
	}
	if *clusterAddr != "" {
		if *clusterName == "" {
			problems = append(problems, errors.New("--cluster needs --cluster-name"))
		}
		o.Cluster.Name = *clusterName
		if o.Cluster.Host, o.Cluster.Port, err = hostPort(*clusterAddr); err != nil {
			problems = append(problems, fmt.Errorf("--cluster %q: %w", *clusterAddr, err))
		}
	} else if *routes != "" {
		problems = append(problems, errors.New("--routes needs --cluster"))
	}
	if *routes != "" {
		o.Routes = server.RoutesFromStr(*routes)
		if len(o.Routes) == 0 {
			problems = append(problems, fmt.Errorf("--routes %q: no valid route URL", *routes))
		}
		for _, r := range o.Routes {
			if r.Scheme != "nats-route" && r.Scheme != "nats" {
				problems = append(problems, fmt.Errorf("--routes: %s: want nats-route://host:port", (&url.URL{Scheme: r.Scheme, Host: r.Host}).String()))
			}
		}
	}
	if err := errors.Join(problems...); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}

	s, err := server.NewServer(o)
	if err != nil {
		return err
	}
	s.ConfigureLogger()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return errors.New("server not ready for connections after 30s")
	}
	<-sigs
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

// hostPort parses host:port. Port 0 becomes nats-server's RANDOM_PORT (its
// own 0 means "the default port").
func hostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0 to 65535", p)
	}
	if n == 0 {
		n = server.RANDOM_PORT
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, n, nil
}
