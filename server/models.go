package server

import "github.com/tiercache/tiercache/tier"

// cmdModelRollout is MODEL.ROLLOUT MODEL VERSION. The name and the version
// are checked here, once (tier.NewRollout): Options.Models receives a
// checked change.
func cmdModelRollout(c *conn, args [][]byte) bool {
	ch, err := tier.NewRollout(string(args[1]), string(args[2]))
	if err != nil {
		c.replyErr(err)
		return false
	}
	rev, err := c.s.opts.Models.Rollout(c.s.ctx, ch)
	if err != nil {
		c.replyErr(err)
		return false
	}
	c.w.int(int64(rev))
	return false
}

// cmdModelPurge is MODEL.PURGE MODEL, the name checked as MODEL.ROLLOUT's.
func cmdModelPurge(c *conn, args [][]byte) bool {
	ch, err := tier.NewPurge(string(args[1]))
	if err != nil {
		c.replyErr(err)
		return false
	}
	rev, err := c.s.opts.Models.Purge(c.s.ctx, ch)
	if err != nil {
		c.replyErr(err)
		return false
	}
	c.w.int(int64(rev))
	return false
}

func cmdModelGet(c *conn, args [][]byte) bool {
	if v, ok := c.s.opts.Cache.Model(string(args[1])); ok {
		c.w.bulkString(v)
	} else {
		c.w.null()
	}
	return false
}

func cmdModelList(c *conn, _ [][]byte) bool {
	models := c.s.opts.Cache.Models()
	c.w.array(2 * len(models))
	for _, m := range models {
		c.w.bulkString(m[0])
		c.w.bulkString(m[1])
	}
	return false
}
