package config

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one bad setting.
type Problem struct {
	// Flag is the setting's flag name without dashes ("mem-max"), or ""
	// for a problem that concerns no single setting.
	Flag string
	// Source is how the user gave the setting: "--mem-max" or
	// "TIERCACHE_MEM_MAX". Empty means "--" + Flag.
	Source string
	// Value is the text given; it is quoted in the message when Given.
	Value string
	Given bool
	// Err says what is wrong with it.
	Err error
}

// Error formats the problem as `--mem-max "12XB": unknown size unit "XB"`.
func (p *Problem) Error() string {
	name := p.Source
	if name == "" && p.Flag != "" {
		name = "--" + p.Flag
	}
	switch {
	case name == "":
		return p.Err.Error()
	case p.Given:
		return fmt.Sprintf("%s %q: %v", name, p.Value, p.Err)
	default:
		return fmt.Sprintf("%s: %v", name, p.Err)
	}
}

// Unwrap returns the problem's cause.
func (p *Problem) Unwrap() error { return p.Err }

// Problems collects bad settings so that they are reported all at once.
// The zero value is ready to use.
type Problems struct {
	list []*Problem
}

// Add records a problem with flag (without dashes) whose value is not known
// here; Bind fills in the value and source later.
func (ps *Problems) Add(flag string, err error) {
	ps.list = append(ps.list, &Problem{Flag: flag, Err: err})
}

// Addf is Add with a formatted message.
func (ps *Problems) Addf(flag, format string, args ...any) {
	ps.Add(flag, fmt.Errorf(format, args...))
}

// AddProblem records p as it is.
func (ps *Problems) AddProblem(p *Problem) { ps.list = append(ps.list, p) }

// Merge appends every problem of err: the Problems of an Options.Validate,
// a *Problem, or any other error (recorded as concerning no single flag).
func (ps *Problems) Merge(err error) {
	if err == nil {
		return
	}
	var other *ProblemsError
	if errors.As(err, &other) {
		ps.list = append(ps.list, other.Problems...)
		return
	}
	var p *Problem
	if errors.As(err, &p) {
		ps.list = append(ps.list, p)
		return
	}
	ps.list = append(ps.list, &Problem{Err: err})
}

// Has reports whether a problem concerns flag.
func (ps *Problems) Has(flag string) bool {
	for _, p := range ps.list {
		if p.Flag == flag {
			return true
		}
	}
	return false
}

// Len is the number of problems recorded.
func (ps *Problems) Len() int { return len(ps.list) }

// Err returns nil when there is no problem, else a *ProblemsError listing
// them all in the order they were recorded.
func (ps *Problems) Err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return &ProblemsError{Problems: append([]*Problem(nil), ps.list...)}
}

// ProblemsError is the error of Problems.Err: every bad setting, joined by
// "; " into a single line.
type ProblemsError struct {
	Problems []*Problem
}

// Error joins the problems with "; ".
func (e *ProblemsError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.Error()
	}
	return strings.Join(s, "; ")
}

// Unwrap returns the problems, so that errors.Is and errors.As see each
// cause.
func (e *ProblemsError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
