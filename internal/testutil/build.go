package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// Command is a program for Build: the file name to give it and its
// package's import path.
type Command struct {
	Name, Pkg string
	Race      bool // build with -race
}

// Build builds cmds into a new temporary directory and returns it with
// each command's path by name. The caller removes the directory.
func Build(cmds ...Command) (dir string, paths map[string]string, err error) {
	dir, err = os.MkdirTemp("", "tiercache-test-bin-")
	if err != nil {
		return "", nil, err
	}
	paths = make(map[string]string, len(cmds))
	for _, c := range cmds {
		paths[c.Name] = filepath.Join(dir, c.Name)
		args := []string{"build", "-o", paths[c.Name]}
		if c.Race {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, c.Pkg)...).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("building %s: %v\n%s", c.Name, err, out)
		}
	}
	return dir, paths, nil
}

// Main is a TestMain for tests of processes: it builds cmds, stores their
// paths by name in *bins, runs the tests, removes the binaries and, when
// the tests passed, fails if goroutines leaked (goleak). It returns the
// exit code for os.Exit.
func Main(m *testing.M, bins *map[string]string, cmds ...Command) int {
	dir, built, err := Build(cmds...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bins = built
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	return code
}
