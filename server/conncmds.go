package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// checkPassword compares in constant time (hashing first, so the length of
// the secret does not show either).
func (s *Server) checkPassword(p []byte) bool {
	a, b := sha256.Sum256(p), sha256.Sum256([]byte(s.opts.RequirePass))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// authFailed counts a failed AUTH, logs it (at most once a second, with the
// count since), and slows the client down, so that guessing is slow.
func (c *conn) authFailed() {
	n := c.s.authFailures.Add(1)
	now := time.Now().UnixNano()
	if last := c.s.lastAuthLog.Load(); now-last > int64(time.Second) && c.s.lastAuthLog.CompareAndSwap(last, now) {
		c.s.opts.Logger.Warn("failed AUTH", zap.Int64("client", c.id), zap.String("addr", c.remote()), zap.Uint64("failures_total", n))
	}
	time.Sleep(authFailureDelay)
}

// authFailureDelay is how long a failed AUTH waits before its reply.
const authFailureDelay = 100 * time.Millisecond

func (c *conn) remote() string {
	if a := c.nc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return "unix"
}

func cmdAuth(c *conn, args [][]byte) bool {
	if len(args) > 3 {
		c.w.error(errSyntax)
		return false
	}
	if len(args) == 2 && c.s.opts.RequirePass == "" {
		c.w.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return false
	}
	user := []byte("default")
	if len(args) == 3 {
		user = args[1]
	}
	if !c.authenticate(user, args[len(args)-1]) {
		return false
	}
	c.w.simple("OK")
	return false
}

// authenticate checks a user name and password as Redis' ACL does with only
// the default user: without RequirePass the default user has no password
// (any password is accepted for it). On failure it replies WRONGPASS.
func (c *conn) authenticate(user, pass []byte) bool {
	if string(user) != "default" || (c.s.opts.RequirePass != "" && !c.s.checkPassword(pass)) {
		c.authFailed()
		c.w.error("WRONGPASS invalid username-password pair or user is disabled.")
		return false
	}
	c.authed = true
	return true
}

func cmdHello(c *conn, args [][]byte) bool {
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			c.w.error("ERR Protocol version is not an integer or out of range")
			return false
		}
		if v != 2 {
			// RESP3 is not spoken: clients fall back to RESP2 on this error.
			c.w.error("NOPROTO unsupported protocol version")
			return false
		}
	}
	// As Redis: parse every option, then authenticate, then set the name.
	var user, pass, name []byte
	for i := 2; i < len(args); i++ {
		more := len(args) - 1 - i
		switch opt := strings.ToUpper(string(args[i])); {
		case opt == "AUTH" && more >= 2:
			user, pass = args[i+1], args[i+2]
			i += 2
		case opt == "SETNAME" && more >= 1:
			if !validName(args[i+1]) {
				c.w.error("ERR Client names cannot contain spaces, newlines or special characters.")
				return false
			}
			name = args[i+1]
			i++
		default:
			c.w.error("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
			return false
		}
	}
	if pass != nil && !c.authenticate(user, pass) {
		return false
	}
	if !c.authed {
		c.w.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return false
	}
	if name != nil {
		c.name = string(name)
	}
	c.w.array(16)
	c.w.bulkString("server")
	c.w.bulkString("redis")
	c.w.bulkString("version")
	c.w.bulkString(redisVersion)
	c.w.bulkString("proto")
	c.w.int(2)
	c.w.bulkString("id")
	c.w.int(c.id)
	c.w.bulkString("mode")
	c.w.bulkString("standalone")
	c.w.bulkString("role")
	c.w.bulkString("master")
	c.w.bulkString("modules")
	c.w.array(0)
	c.w.bulkString("tiercache_version")
	c.w.bulkString(c.s.opts.Version)
	return false
}

// redisVersion is the Redis version whose behaviour the server follows, as
// reported to clients that look at it.
const redisVersion = "7.2.0"

// validName is Redis' rule for client names: printable ASCII, no spaces.
func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func cmdClient(c *conn, args [][]byte) bool {
	sub := strings.ToUpper(string(args[1]))
	wrong := func() { c.w.error("ERR wrong number of arguments for 'client|" + strings.ToLower(sub) + "' command") }
	switch sub {
	case "SETNAME":
		if len(args) != 3 {
			wrong()
			return false
		}
		if !validName(args[2]) {
			c.w.error("ERR Client names cannot contain spaces, newlines or special characters.")
			return false
		}
		c.name = string(args[2])
		c.w.simple("OK")
	case "GETNAME":
		if len(args) != 2 {
			wrong()
			return false
		}
		if c.name == "" {
			c.w.null()
		} else {
			c.w.bulkString(c.name)
		}
	case "SETINFO":
		if len(args) != 4 {
			wrong()
			return false
		}
		switch strings.ToUpper(string(args[2])) {
		case "LIB-NAME", "LIB-VER":
			c.w.simple("OK")
		default:
			c.w.error("ERR Unrecognized option '" + string(args[2]) + "'")
		}
	case "ID":
		if len(args) != 2 {
			wrong()
			return false
		}
		c.w.int(c.id)
	case "INFO":
		c.w.bulkString(c.info() + "\n")
	case "LIST":
		c.w.bulkString(c.s.clientList())
	default:
		c.w.error("ERR unknown subcommand '" + string(args[1]) + "'. Try CLIENT HELP.")
	}
	return false
}

// info is one CLIENT LIST line.
func (c *conn) info() string {
	return "id=" + strconv.FormatInt(c.id, 10) + " addr=" + c.remote() + " name=" + c.name +
		" age=" + strconv.FormatInt(int64(time.Since(c.created).Seconds()), 10) + " db=0 cmd=" + c.lastCmd
}

func (s *Server) clientList() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for c := range s.mu.conns {
		b.WriteString(c.info())
		b.WriteByte('\n')
	}
	return b.String()
}

func cmdCommand(c *conn, args [][]byte) bool {
	if len(args) == 1 {
		names := commandNames()
		c.w.array(len(names))
		for _, n := range names {
			c.commandInfo(commands[n])
		}
		return false
	}
	switch strings.ToUpper(string(args[1])) {
	case "COUNT":
		c.w.int(int64(len(commands)))
	case "LIST":
		names := commandNames()
		c.w.array(len(names))
		for _, n := range names {
			c.w.bulkString(n)
		}
	case "INFO":
		c.w.array(len(args) - 2)
		for _, a := range args[2:] {
			if cmd := lookup(a); cmd != nil {
				c.commandInfo(cmd)
			} else {
				c.w.null() // as Redis 7
			}
		}
	case "DOCS":
		c.w.array(0) // no docs: redis-cli then shows no hints
	default:
		c.w.error("ERR unknown subcommand '" + string(args[1]) + "'. Try COMMAND HELP.")
	}
	return false
}

// commandInfo writes the reply of COMMAND INFO for cmd (Redis 2.8 layout:
// name, arity, flags, first key, last key, step).
func (c *conn) commandInfo(cmd *command) {
	c.w.array(6)
	c.w.bulkString(cmd.name)
	c.w.int(int64(cmd.arity))
	flags := []string{"readonly", "fast"}
	if cmd.write {
		flags = []string{"write"}
	}
	if cmd.first == 0 {
		flags = append(flags, "loading", "stale")
	}
	c.w.array(len(flags))
	for _, f := range flags {
		c.w.simple(f)
	}
	c.w.int(int64(cmd.first))
	c.w.int(int64(cmd.last))
	c.w.int(int64(cmd.step))
}

func cmdConfig(c *conn, args [][]byte) bool {
	switch strings.ToUpper(string(args[1])) {
	case "GET":
		if len(args) < 3 {
			c.w.error("ERR wrong number of arguments for 'config|get' command")
			return false
		}
		params := c.s.configParams()
		var out []string
		for _, pat := range args[2:] {
			for _, p := range params {
				if ok, _ := pathMatch(strings.ToLower(string(pat)), p[0]); ok {
					out = append(out, p[0], p[1])
				}
			}
		}
		c.w.array(len(out))
		for _, s := range out {
			c.w.bulkString(s)
		}
	case "SET", "RESETSTAT", "REWRITE":
		c.w.error("ERR CONFIG " + strings.ToUpper(string(args[1])) + " is not supported: tiercached is configured by its flags")
	default:
		c.w.error("ERR unknown subcommand '" + string(args[1]) + "'. Try CONFIG HELP.")
	}
	return false
}

// configParams are the parameters CONFIG GET reports, with the values that
// describe tiercached (redis-benchmark reads save and appendonly).
func (s *Server) configParams() [][2]string {
	st := s.opts.Cache.Stats()
	return [][2]string{
		{"maxmemory", strconv.FormatInt(st.L1.MaxBytes, 10)},
		{"maxmemory-policy", s.opts.MaxmemoryPolicy},
		{"save", ""},
		{"appendonly", "no"},
		{"databases", "1"},
		{"maxclients", strconv.Itoa(s.opts.MaxClients)},
		{"proto-max-bulk-len", strconv.FormatInt(s.opts.MaxValue, 10)},
	}
}
