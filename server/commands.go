package server

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/tiercache/tiercache/tier"
)

// command is one RESP command. arity follows Redis: n > 0 means exactly n
// arguments (the name included), n < 0 at least -n.
type command struct {
	name   string
	arity  int
	noAuth bool // may run before AUTH
	write  bool
	first  int // position of the first key (COMMAND INFO), 0 if none
	last   int // position of the last key, -1 for "all the rest"
	step   int
	run    func(c *conn, args [][]byte) (quit bool)
	idx    int // position in commandNames(), for cmdStats
}

// cmdUnknown is the cmdStats index of unknown commands.
var cmdUnknown int

var commands = map[string]*command{}

func init() {
	for _, c := range []*command{
		{name: "ping", arity: -1, run: cmdPing},
		{name: "echo", arity: 2, run: cmdEcho},
		{name: "quit", arity: -1, noAuth: true, run: cmdQuit},
		{name: "hello", arity: -1, noAuth: true, run: cmdHello},
		{name: "auth", arity: -2, noAuth: true, run: cmdAuth},
		{name: "select", arity: 2, run: cmdSelect},
		{name: "client", arity: -2, run: cmdClient},
		{name: "command", arity: -1, run: cmdCommand},
		{name: "config", arity: -2, run: cmdConfig},
		{name: "get", arity: 2, first: 1, last: 1, step: 1, run: cmdGet},
		{name: "set", arity: -3, write: true, first: 1, last: 1, step: 1, run: cmdSet},
		{name: "mget", arity: -2, first: 1, last: -1, step: 1, run: cmdMget},
		{name: "mset", arity: -3, write: true, first: 1, last: -1, step: 2, run: cmdMset},
		{name: "del", arity: -2, write: true, first: 1, last: -1, step: 1, run: cmdDel},
		{name: "unlink", arity: -2, write: true, first: 1, last: -1, step: 1, run: cmdDel},
		{name: "exists", arity: -2, first: 1, last: -1, step: 1, run: cmdExists},
		{name: "expire", arity: -3, write: true, first: 1, last: 1, step: 1, run: cmdExpire},
		{name: "pexpire", arity: -3, write: true, first: 1, last: 1, step: 1, run: cmdExpire},
		{name: "persist", arity: 2, write: true, first: 1, last: 1, step: 1, run: cmdPersist},
		{name: "ttl", arity: 2, first: 1, last: 1, step: 1, run: cmdTTL},
		{name: "pttl", arity: 2, first: 1, last: 1, step: 1, run: cmdTTL},
		{name: "dbsize", arity: 1, run: cmdDBSize},
		{name: "flushall", arity: -1, write: true, run: cmdFlushAll},
		{name: "flushdb", arity: -1, write: true, run: cmdFlushAll},
		{name: "info", arity: -1, run: cmdInfo},
		{name: "lease.get", arity: -3, first: 1, last: 1, step: 1, run: cmdLeaseGet},
		{name: "lease.mget", arity: -5, first: 4, last: -1, step: 1, run: cmdLeaseMget},
		{name: "lease.release", arity: 3, first: 1, last: 1, step: 1, run: cmdLeaseRelease},
		{name: "model.rollout", arity: 3, write: true, run: cmdModelRollout},
		{name: "model.get", arity: 2, run: cmdModelGet},
		{name: "model.list", arity: 1, run: cmdModelList},
		{name: "model.purge", arity: 2, write: true, run: cmdModelPurge},
	} {
		commands[c.name] = c
	}
	for i, name := range commandNames() {
		commands[name].idx = i
	}
	cmdUnknown = len(commands)
}

// lookup finds a command by name, case-insensitively, without allocating.
func lookup(name []byte) *command {
	var buf [32]byte
	if len(name) > len(buf) {
		return nil
	}
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	return commands[string(buf[:len(name)])]
}

// unknownCommand is Redis' error for a command it does not have: the name
// cut at 128 bytes, then the arguments quoted while they take less than 128
// bytes (the last one cut to fit).
func unknownCommand(args [][]byte) string {
	name := args[0][:min(len(args[0]), 128)]
	var quoted []byte
	for _, a := range args[1:] {
		if len(quoted) >= 128 {
			break
		}
		n := min(len(a), 128-len(quoted))
		quoted = append(quoted, '\'')
		quoted = append(quoted, a[:n]...)
		quoted = append(quoted, '\'', ' ')
	}
	return "ERR unknown command '" + string(name) + "', with args beginning with: " + string(quoted)
}

const (
	errSyntax   = "ERR syntax error"
	errNotInt   = "ERR value is not an integer or out of range"
	errWrongArg = "ERR wrong number of arguments for '%s' command"
)

// replyErr writes the reply for an error from the cache. The errors a
// client can act on carry their fields (tier.StaleError, InvalidError,
// TooLargeError), and their replies are built from them.
func (c *conn) replyErr(err error) {
	var (
		stale    *tier.StaleError
		invalid  *tier.InvalidError
		tooLarge *tier.TooLargeError
	)
	switch {
	case errors.As(err, &stale):
		c.w.error(stale.Error())
	case errors.As(err, &invalid):
		c.w.error("ERR " + invalid.Message())
	case errors.Is(err, tier.ErrClosed):
		c.w.error("ERR server is shutting down")
	case errors.As(err, &tooLarge):
		c.w.error("ERR " + tooLarge.Message())
	default:
		c.w.error("ERR " + err.Error())
	}
}

func cmdPing(c *conn, args [][]byte) bool {
	switch len(args) {
	case 1:
		c.w.simple("PONG")
	case 2:
		c.w.bulk(args[1])
	default:
		c.w.error(fmt.Sprintf(errWrongArg, "ping"))
	}
	return false
}

func cmdEcho(c *conn, args [][]byte) bool {
	c.w.bulk(args[1])
	return false
}

func cmdQuit(c *conn, _ [][]byte) bool {
	c.w.simple("OK")
	return true
}

func cmdSelect(c *conn, args [][]byte) bool {
	n, ok := parseInt(args[1])
	switch {
	case !ok:
		c.w.error(errNotInt)
	case n != 0:
		c.w.error("ERR DB index is out of range")
	default:
		c.w.simple("OK")
	}
	return false
}

func cmdGet(c *conn, args [][]byte) bool {
	r, err := c.s.opts.Cache.Get(args[1])
	switch {
	case err == nil:
		c.w.bulk(r.Value())
	case errors.Is(err, tier.ErrNotFound):
		c.w.null()
	default:
		c.replyErr(err)
	}
	return false
}

func cmdMget(c *conn, args [][]byte) bool {
	c.w.array(len(args) - 1)
	for _, k := range args[1:] {
		r, err := c.s.opts.Cache.Get(k)
		if err != nil {
			c.w.null() // MGET answers nil for any key it cannot serve
			continue
		}
		c.w.bulk(r.Value())
	}
	return false
}

// nowMs is the server's clock in Unix milliseconds.
func (c *conn) nowMs() int64 { return c.s.opts.Clock.Now().UnixMilli() }

func cmdSet(c *conn, args [][]byte) bool {
	var a tier.SetArgs
	var expireUnit string // the EX/PX/EXAT/PXAT given, "" if none
	for i := 3; i < len(args); i++ {
		opt := strings.ToUpper(string(args[i]))
		switch opt {
		case "NX", "XX":
			cond := tier.IfAbsent
			if opt == "XX" {
				cond = tier.IfPresent
			}
			if a.Cond != tier.Always && a.Cond != cond { // repeating one is fine, as in Redis
				c.w.error(errSyntax)
				return false
			}
			a.Cond = cond
		case "GET":
			a.GetOld = true
		case "KEEPTTL":
			if expireUnit != "" {
				c.w.error(errSyntax)
				return false
			}
			a.KeepTTL = true
		case "EX", "PX", "EXAT", "PXAT":
			// Redis accepts the same unit twice (the last one wins), not two units.
			if (expireUnit != "" && expireUnit != opt) || a.KeepTTL || i+1 >= len(args) {
				c.w.error(errSyntax)
				return false
			}
			i++
			n, ok := parseInt(args[i])
			if !ok {
				c.w.error(errNotInt)
				return false
			}
			at, ok := expireAt(opt, n, c.nowMs())
			if !ok {
				c.w.error("ERR invalid expire time in 'set' command")
				return false
			}
			a.ExpireAt, expireUnit = at, opt
		default:
			c.w.error(errSyntax)
			return false
		}
	}
	a.Spare = c.rd.spare(2) // the cache may keep it: args[2] is not used below
	res, err := c.s.opts.Cache.SetWith(args[1], args[2], a)
	if err == nil && res.Stored {
		c.s.leases.Complete(args[1], args[2])
	}
	switch {
	case err != nil:
		c.replyErr(err)
	case a.GetOld && res.Old != nil:
		c.w.bulk(res.Old.Value())
	case a.GetOld, !res.Stored:
		c.w.null()
	default:
		c.w.simple("OK")
	}
	return false
}

// expireAt converts an EX/PX/EXAT/PXAT argument to Unix ms; ok is false for
// a non-positive or overflowing time, as Redis refuses them.
func expireAt(unit string, n, nowMs int64) (int64, bool) {
	if n <= 0 {
		return 0, false
	}
	switch unit {
	case "EX", "EXAT":
		if n > math.MaxInt64/1000 {
			return 0, false
		}
		n *= 1000
	}
	if unit == "EX" || unit == "PX" {
		if n > math.MaxInt64-nowMs {
			return 0, false
		}
		n += nowMs
	}
	return n, true
}

func cmdMset(c *conn, args [][]byte) bool {
	if len(args)%2 != 1 {
		c.w.error(fmt.Sprintf(errWrongArg, "mset"))
		return false
	}
	// Check every key before writing any: MSET is all or nothing for the
	// errors we can know in advance (a malformed or stale scope).
	for i := 1; i < len(args); i += 2 {
		if err := c.s.opts.Cache.CheckWrite(args[i]); err != nil {
			c.replyErr(err)
			return false
		}
	}
	for i := 1; i < len(args); i += 2 {
		if _, err := c.s.opts.Cache.SetWith(args[i], args[i+1], tier.SetArgs{Spare: c.rd.spare(i + 1)}); err != nil {
			c.replyErr(err)
			return false
		}
		c.s.leases.Complete(args[i], args[i+1])
	}
	c.w.simple("OK")
	return false
}

func cmdDel(c *conn, args [][]byte) bool {
	var n int64
	for _, k := range args[1:] {
		ok, err := c.s.opts.Cache.Remove(k)
		if err != nil {
			c.replyErr(err)
			return false
		}
		if ok {
			n++
		}
	}
	c.w.int(n)
	return false
}

func cmdExists(c *conn, args [][]byte) bool {
	var n int64
	for _, k := range args[1:] {
		if _, err := c.s.opts.Cache.Get(k); err == nil {
			n++
		}
	}
	c.w.int(n)
	return false
}

func cmdExpire(c *conn, args [][]byte) bool {
	name := strings.ToLower(string(args[0]))
	// As Redis: the options first, then the number.
	var cond tier.ExpireCond
	for _, o := range args[3:] {
		switch strings.ToUpper(string(o)) {
		case "NX":
			cond |= tier.ExpireNX
		case "XX":
			cond |= tier.ExpireXX
		case "GT":
			cond |= tier.ExpireGT
		case "LT":
			cond |= tier.ExpireLT
		default:
			c.w.error("ERR Unsupported option " + string(o))
			return false
		}
	}
	switch {
	case cond&tier.ExpireNX != 0 && cond != tier.ExpireNX:
		c.w.error("ERR NX and XX, GT or LT options at the same time are not compatible")
		return false
	case cond&tier.ExpireGT != 0 && cond&tier.ExpireLT != 0:
		c.w.error("ERR GT and LT options at the same time are not compatible")
		return false
	}
	n, ok := parseInt(args[2])
	if !ok {
		c.w.error(errNotInt)
		return false
	}
	now := c.nowMs()
	ms := n
	if name == "expire" {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			c.w.error("ERR invalid expire time in '" + name + "' command")
			return false
		}
		ms = n * 1000
	}
	if ms > 0 && ms > math.MaxInt64-now {
		c.w.error("ERR invalid expire time in '" + name + "' command")
		return false
	}
	at := now + ms
	if ms <= 0 {
		at = now // in the past: the key is deleted
	}
	changed, err := c.s.opts.Cache.Expire(args[1], at, cond)
	if err != nil {
		c.replyErr(err)
		return false
	}
	c.w.int(b2i(changed))
	return false
}

func cmdPersist(c *conn, args [][]byte) bool {
	changed, err := c.s.opts.Cache.Expire(args[1], 0, tier.ExpireAlways)
	if err != nil {
		c.replyErr(err)
		return false
	}
	c.w.int(b2i(changed))
	return false
}

func cmdTTL(c *conn, args [][]byte) bool {
	r, err := c.s.opts.Cache.Get(args[1])
	switch {
	case errors.Is(err, tier.ErrNotFound):
		c.w.int(-2)
	case err != nil:
		c.replyErr(err)
	case r.ExpireAt() == 0:
		c.w.int(-1)
	default:
		left := max(0, r.ExpireAt()-c.nowMs())
		if bytes.EqualFold(args[0], []byte("ttl")) {
			left = (left + 500) / 1000
		}
		c.w.int(left)
	}
	return false
}

func cmdDBSize(c *conn, _ [][]byte) bool {
	c.w.int(c.s.opts.Cache.Keys())
	return false
}

// cmdFlushAll is FLUSHALL and FLUSHDB (there is one database) with
// Redis' arguments: none, ASYNC or SYNC. Both flush at once: the L2 range
// delete returns without waiting for the space to be reclaimed.
func cmdFlushAll(c *conn, args [][]byte) bool {
	if len(args) > 2 || (len(args) == 2 && !strings.EqualFold(string(args[1]), "ASYNC") && !strings.EqualFold(string(args[1]), "SYNC")) {
		c.w.error(errSyntax)
		return false
	}
	if err := c.s.opts.Cache.FlushAll(); err != nil {
		c.replyErr(err)
		return false
	}
	c.w.simple("OK")
	return false
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
