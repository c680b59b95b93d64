package main

import (
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger returns a logger writing to w in format ("json" or "console")
// at level and above.
func newLogger(level zapcore.Level, format string, w io.Writer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if format == "json" {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w))))
}

// logLimiter lets one line per key through per interval and counts the
// lines it holds back, so that a failing disk, which fails every write and
// read, costs one log line a second rather than one per request.
type logLimiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex // guards keys
	keys map[string]*limitState
}

type limitState struct {
	last    time.Time
	dropped uint64
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, now: time.Now, keys: map[string]*limitState{}}
}

// allow reports whether a line for key may be logged now and, if so, how
// many lines for key were held back since the last one. Keys must come from
// a small set (operation names, format strings): each is remembered.
func (l *logLimiter) allow(key string) (ok bool, suppressed uint64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		st = &limitState{}
		l.keys[key] = st
	} else if now.Sub(st.last) < l.every {
		st.dropped++
		return false, 0
	}
	st.last = now
	suppressed, st.dropped = st.dropped, 0
	return true, suppressed
}
