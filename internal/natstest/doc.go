// Package natstest runs real NATS servers for tests: a single JetStream
// server, an in-process JetStream cluster whose nodes can be restarted or
// stopped, and a TCP proxy that cuts a client off from NATS and restores it.
// Everything listens on 127.0.0.1 on random ports and is shut down in
// t.Cleanup.
package natstest
