package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"github.com/tiercache/tiercache/internal/config"
	"go.uber.org/zap"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); without
// it the module version from the build information is used.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Environ(), os.Stdout, os.Stderr))
}

// run is the program: flags → options → newDaemon → start → wait for a
// signal → shutdown. It returns the exit code: 0 after a graceful stop, 1
// for a start-up error or a failure, 2 when a second signal cut the
// shutdown short.
func run(args []string, lookupEnv func(string) (string, bool), environ []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, lookupEnv, environ)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprint(stdout, c.usage)
		return 0
	case err != nil && !isProblems(err):
		// pflag's own errors: an unknown flag, a missing value.
		return startupError(stderr, fmt.Errorf("%w (see tiercached --help)", err))
	case err != nil:
		return startupError(stderr, err)
	case c.version:
		fmt.Fprintf(stdout, "tiercached %s\n", buildVersion())
		return 0
	}
	log := newLogger(c.logLevel, c.logFormat, stderr)
	defer log.Sync() //nolint:errcheck // stderr may not support sync
	c.opts.Logger = log
	c.opts.Version = buildVersion()

	// Before newDaemon, so that a signal during start-up is a graceful
	// stop once it has started, not the default abrupt exit.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	d, err := newDaemon(c.opts)
	if err != nil {
		return startupError(stderr, err)
	}
	d.startServing()
	for _, name := range c.unknownEnv {
		log.Warn("ignoring an environment variable that matches no flag", zap.String("variable", name))
	}

	code := 0
	select {
	case s := <-sigs:
		log.Info("stopping", zap.Stringer("signal", s))
	case err := <-d.failed():
		log.Error("stopping after a failure", zap.Error(err))
		code = 1
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			log.Error("second signal during shutdown; exiting now", zap.Stringer("signal", s))
			_ = log.Sync()
			os.Exit(2)
		case <-done:
		}
	}()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ShutdownTimeout)
	defer cancel()
	if err := d.shutdown(ctx); err != nil {
		log.Error("shutdown", zap.Error(err))
		code = 1
	}
	log.Info("stopped", zap.Duration("took", time.Since(began).Round(time.Millisecond)))
	return code
}

// startupError prints err as the one line a start-up error is, and
// returns the exit code.
func startupError(w io.Writer, err error) int {
	// Errors joined by errors.Join, or from Pebble, may span lines.
	fmt.Fprintf(w, "tiercached: %s\n", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
	return 1
}

func isProblems(err error) bool {
	var pe *config.ProblemsError
	return errors.As(err, &pe)
}

// buildVersion is the daemon's version: set at link time, else the main
// module's version, else "dev".
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
