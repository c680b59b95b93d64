package tier

import "time"

// newTicker returns a ticker for the flusher; a zero or negative interval
// (not allowed by Validate, but defensive) falls back to 200ms.
func newTicker(d time.Duration) *time.Ticker {
	if d <= 0 {
		d = 200 * time.Millisecond
	}
	return time.NewTicker(d)
}
