// Command natsd runs one nats-server node with JetStream, built from the
// nats-server module tiercache already depends on, so that deploy/cluster.sh
// can start a NATS cluster with nothing but Go installed. It is a thin
// main in nats-server's own style: flags → options → NewServer → Start →
// wait for SIGINT or SIGTERM → Shutdown. For production use the official
// nats-server binary or image; this covers the flags the cluster needs.
//
//	natsd --name n1 --listen 127.0.0.1:4222 --http 127.0.0.1:8222 \
//	      --cluster-name tiercache --cluster 127.0.0.1:6222 \
//	      --routes nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224 \
//	      --store-dir /var/lib/natsd/n1
package main
