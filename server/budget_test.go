package server

// idle reports whether no budget is held in either lane (it briefly
// takes everything).
func (b *budget) idle() bool {
	if !b.main.TryAcquire(b.mainSize) {
		return false
	}
	defer b.main.Release(b.mainSize)
	return b.small.used.Load() == 0
}
