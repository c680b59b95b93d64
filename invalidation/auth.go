package invalidation

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// NKeyOption returns the nats.Option that authenticates with the NKey user
// seed in file (read again at each connection, as nats.UserCredentials
// does). A file that cannot be read or holds no user seed fails the
// connection with that error.
func NKeyOption(file string) nats.Option {
	return func(o *nats.Options) error {
		opt, err := nats.NkeyOptionFromSeed(file)
		if err != nil {
			return fmt.Errorf("NKey seed file %s: %w", file, err)
		}
		return opt(o)
	}
}
