package peer

// connBytes is what a server connection holds besides the bodies
// MaxInflight counts: its buffer for small bodies and its 32 KiB reader
// and writer.
const connBytes = smallFrame + 2*(32<<10)

// MemoryBound is the most memory the server holds for requests: the
// bodies MaxInflight admits and MaxConns connections' own buffers.
func (s *Server) MemoryBound() int64 {
	return s.opts.MaxInflight + int64(s.opts.MaxConns)*connBytes
}

// MemoryBound is the most memory the client's forward queue holds
// (QueueBytes). Its connections to peers hold 48 KiB each besides.
func (c *Client) MemoryBound() int64 { return c.opts.QueueBytes }
