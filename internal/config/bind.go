package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Text returns a pflag.Value that keeps the text it is given, for a
// setting that Binder parses and checks later: parsing in Set would stop
// pflag at the first bad value, and the user is owed all of them at once.
// typ names the value in the usage text ("SIZE", "DURATION").
func Text(p *string, typ string) pflag.Value { return &textValue{p: p, typ: typ} }

type textValue struct {
	p   *string
	typ string
}

func (v *textValue) String() string     { return *v.p }
func (v *textValue) Set(s string) error { *v.p = s; return nil }
func (v *textValue) Type() string       { return v.typ }

// EnvName returns the environment variable of a flag: prefix followed by
// the flag's name in upper case with '-' as '_' (TIERCACHE_MEM_MAX for
// mem-max with prefix TIERCACHE_).
func EnvName(prefix, flag string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Binder reads the flags of a parsed pflag.FlagSet, each from the command
// line or else from its environment variable, into typed values, and
// collects every problem found on the way.
type Binder struct {
	fs     *pflag.FlagSet
	source map[string]string // flag name → "--name" or the variable's name
	given  map[string]bool   // set on the command line or from the environment
	shown  map[string]func(string) string
	Problems
}

// Bind returns a Binder over fs, which must have been parsed. Every flag the
// command line left unset takes the value of its environment variable
// (EnvName(prefix, name)) when lookup finds it set and non-empty; the flags
// named in skip (such as "version" and "help") never come from the
// environment.
func Bind(fs *pflag.FlagSet, prefix string, lookup func(string) (string, bool), skip ...string) *Binder {
	b := &Binder{fs: fs, source: map[string]string{}, given: map[string]bool{}, shown: map[string]func(string) string{}}
	fs.VisitAll(func(f *pflag.Flag) {
		b.source[f.Name] = "--" + f.Name
		if f.Changed {
			b.given[f.Name] = true
			return
		}
		if slices.Contains(skip, f.Name) {
			return
		}
		env := EnvName(prefix, f.Name)
		v, ok := lookup(env)
		if !ok || v == "" {
			return
		}
		b.source[f.Name] = env
		b.given[f.Name] = true
		if err := f.Value.Set(v); err != nil {
			b.AddProblem(&Problem{Flag: f.Name, Source: env, Value: v, Given: true, Err: err})
		}
		// Redact is called after Bind, so no value set here can be a
		// secret: only flags whose Set can fail (booleans) get here.
	})
	return b
}

// Redact makes the problems of flag show its value as show returns it (a
// URL without its password, say); with show nil they do not show the value
// at all. Call it before recording problems.
func (b *Binder) Redact(flag string, show func(string) string) {
	b.shown[flag] = show
}

// problem returns a problem of flag with its source and value.
func (b *Binder) problem(flag string, err error) *Problem {
	p := &Problem{Flag: flag, Source: b.source[flag], Value: b.Text(flag), Given: true, Err: err}
	if show, ok := b.shown[flag]; ok {
		if show == nil {
			p.Value, p.Given = "", false
		} else {
			p.Value = show(p.Value)
		}
	}
	return p
}

// Source returns how flag was given: "--name", or its environment variable
// when the value came from there.
func (b *Binder) Source(flag string) string { return b.source[flag] }

// Given reports whether flag was set on the command line or in the
// environment (rather than left at its default).
func (b *Binder) Given(flag string) bool { return b.given[flag] }

// Text returns flag's value as text.
func (b *Binder) Text(flag string) string {
	f := b.fs.Lookup(flag)
	if f == nil {
		panic(fmt.Sprintf("config: no flag %q", flag)) // programmer error
	}
	return f.Value.String()
}

// Fail records that flag's value is bad because of err.
func (b *Binder) Fail(flag string, err error) {
	b.AddProblem(b.problem(flag, err))
}

// Size parses flag's value with ParseSize into dst; a bad value is recorded
// and leaves dst unchanged.
func (b *Binder) Size(flag string, dst *int64) {
	n, err := ParseSize(b.Text(flag))
	if err != nil {
		b.Fail(flag, err)
		return
	}
	*dst = n
}

// Duration parses flag's value with time.ParseDuration into dst; a bad
// value is recorded and leaves dst unchanged.
func (b *Binder) Duration(flag string, dst *time.Duration) {
	d, err := time.ParseDuration(b.Text(flag))
	if err != nil {
		b.Fail(flag, errors.New("not a duration (want Go syntax such as 200ms, 5s or 1m30s)"))
		return
	}
	*dst = d
}

// Int parses flag's value as a decimal int into dst; a bad value is
// recorded and leaves dst unchanged.
func (b *Binder) Int(flag string, dst *int) {
	n, err := strconv.Atoi(b.Text(flag))
	if err != nil {
		b.Fail(flag, errors.New("not an integer"))
		return
	}
	*dst = n
}

// Parse calls parse with flag's value and records its error, if any.
func (b *Binder) Parse(flag string, parse func(string) error) {
	if err := parse(b.Text(flag)); err != nil {
		b.Fail(flag, err)
	}
}

// Check records the problems of a Validate: each problem about a flag is
// given the flag's source and value, and dropped when that flag already
// failed to parse (its zero value would only produce a second, misleading
// complaint).
func (b *Binder) Check(err error) {
	if err == nil {
		return
	}
	failed := map[string]bool{}
	for _, p := range b.list {
		failed[p.Flag] = true
	}
	var in Problems
	in.Merge(err)
	for _, p := range in.list {
		if p.Flag != "" && b.fs.Lookup(p.Flag) != nil {
			if failed[p.Flag] {
				continue
			}
			p = b.problem(p.Flag, p.Err)
		}
		b.AddProblem(p)
	}
}

// UnknownEnv returns the variables of environ (as os.Environ gives them)
// that start with prefix but belong to no flag of fs, sorted: most likely
// misspelt settings.
func UnknownEnv(fs *pflag.FlagSet, prefix string, environ []string) []string {
	known := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { known[EnvName(prefix, f.Name)] = true })
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, prefix) && !known[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
