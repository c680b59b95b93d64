package invalidation

import "github.com/tiercache/tiercache/tier"

// Cache is the cache-side registry a Cluster keeps in step with the
// bucket: what it reads to compare and catch up, and the two calls that
// apply the bucket's changes without waiting for the disk. *tier.Hybrid
// and *tier.Registry are ones.
type Cache interface {
	RegistryReader
	// ApplyModelsAsync applies changes at bucket revision rev
	// (tier.Registry.ApplyModelsAsync).
	ApplyModelsAsync(changes []tier.ModelChange, rev uint64)
	// ResyncModelsAsync applies changes at rev after the bucket's
	// revisions started over (tier.Registry.ResyncModelsAsync).
	ResyncModelsAsync(changes []tier.ModelChange, rev uint64)
}

// RegistryReader is what a Cluster reads of the cache's registry.
type RegistryReader interface {
	// Model returns model's version, ok false if it has none.
	Model(model string) (version string, ok bool)
	// Models returns every model with a version, sorted by name.
	Models() [][2]string
	// ModelsRevision returns the bucket revision the cache has applied.
	ModelsRevision() uint64
}

var (
	_ Cache = (*tier.Hybrid)(nil)
	_ Cache = (*tier.Registry)(nil)
)
