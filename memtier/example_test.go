package memtier_test

import (
	"fmt"
	"log"

	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
)

func Example() {
	c, err := memtier.New(memtier.Options{MaxBytes: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Records larger than this stay in L2.
	fmt.Println("MaxRecord:", c.MaxRecord())

	c.SetOnEvict(func(key string, r tier.Record, _ bool) {
		// Runs under a shard lock: hand the record to L2's writer, quickly.
	})
	if err := c.Set([]byte("greeting"), tier.NewRecord(tier.Header{}, []byte("hello"))); err != nil {
		log.Fatal(err)
	}
	r, err := c.Get([]byte("greeting"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, %d keys\n", r.Value(), c.Stats().Keys)
	// Output:
	// MaxRecord: 5872025
	// hello, 1 keys
}
