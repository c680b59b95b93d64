// Package config parses the settings of tiercache's programs: byte sizes,
// NATS URL lists, listen addresses, and flags that may also come from the
// environment. It knows no program's flag table; cmd/ binds its flags with
// it into the options of the packages it wires.
//
// # Basics
//
// ParseSize reads sizes such as "512MiB", "1.5GB" or "100" (bytes).
// BindEnv fills every flag the command line left unset from its
// environment variable (TIERCACHE_MEM_MAX for --mem-max) and records where
// each value came from, so that a Problem names the setting the way the user
// gave it: `--mem-max "12XB": unknown size unit "XB"` or
// `TIERCACHE_MEM_MAX "12XB": …`. Problems collects every bad setting so that
// a program reports them all at once, in one line.
//
// # Errors
//
// The sentinels (ErrSizeSyntax, ErrSizeUnit, ErrSizeRange, ErrAddr) carry
// no "config:" prefix, unlike other packages' errors: they are shown to
// the user right after the setting they concern, as in
// `--mem-max "12XB": unknown size unit "XB"`, where a package name would
// be noise. Check them with errors.Is.
//
// # Caveats
//
// An environment variable that is set but empty counts as unset: deployment
// tools commonly export empty variables for settings the operator left
// blank. A flag given on the command line always wins over its variable.
//
// Sizes are exact: "1.5KiB" is 1536 bytes, and a size that is not a whole
// number of bytes ("0.3KiB") is refused rather than rounded.
package config
