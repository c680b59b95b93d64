package invalidation

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/nats-io/nats.go"
)

// ErrForbidden is returned by Rollout and Purge when NATS refused the
// change: the connection's account may not publish to the model's key
// (see the permissions example in the README). Nothing was changed.
var ErrForbidden = errors.New("invalidation: NATS refused the change (permissions)")

// publishViolation extracts the subject of a refused publish from the
// error nats.go reports: `nats: permissions violation: Permissions
// Violation for Publish to "SUBJECT"`.
var publishViolation = regexp.MustCompile(`(?i)publish to "([^"]+)"`)

// PermissionWatch fails publishes in flight that NATS refuses for lack of
// permission. The server reports such a refusal only asynchronously, to
// the connection's error handler, so a JetStream publish (kv.Put) would
// otherwise wait for an acknowledgement that never comes until its
// context ends. Pass every asynchronous error of the connection to Handle
// (from nats.ErrorHandler), and publish with a context from Watch: it is
// cancelled, with cause an error wrapping ErrForbidden, when a violation
// for its subject arrives. The zero value is ready to use.
type PermissionWatch struct {
	mu      sync.Mutex
	waiting map[string]map[*context.CancelCauseFunc]struct{}
}

// Watch returns a context derived from ctx for publishing to subject, and
// the function that stops watching (call it when the publish returns).
func (w *PermissionWatch) Watch(ctx context.Context, subject string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	w.mu.Lock()
	if w.waiting == nil {
		w.waiting = make(map[string]map[*context.CancelCauseFunc]struct{})
	}
	if w.waiting[subject] == nil {
		w.waiting[subject] = make(map[*context.CancelCauseFunc]struct{})
	}
	w.waiting[subject][&cancel] = struct{}{}
	w.mu.Unlock()
	return ctx, func() {
		w.mu.Lock()
		delete(w.waiting[subject], &cancel)
		if len(w.waiting[subject]) == 0 {
			delete(w.waiting, subject)
		}
		w.mu.Unlock()
		cancel(context.Canceled)
	}
}

// Handle fails the publishes to the subject of err if err is a publish
// permissions violation, and reports whether it was one.
func (w *PermissionWatch) Handle(err error) bool {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return false
	}
	m := publishViolation.FindStringSubmatch(err.Error())
	if m == nil {
		return false
	}
	cause := fmt.Errorf("%w: %v", ErrForbidden, err)
	w.mu.Lock()
	defer w.mu.Unlock()
	for cancel := range w.waiting[m[1]] {
		(*cancel)(cause)
	}
	return true
}

// Refused returns the ErrForbidden error that cancelled a context from
// Watch, or nil if it was not cancelled by a violation.
func Refused(ctx context.Context) error {
	if err := context.Cause(ctx); errors.Is(err, ErrForbidden) {
		return err
	}
	return nil
}

// KVSubject is the subject a change of key in bucket is published to.
func KVSubject(bucket, key string) string { return fmt.Sprintf("$KV.%s.%s", bucket, key) }
