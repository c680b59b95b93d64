package server

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestInfoModels: INFO's # Models section counts GET hits and misses by
// model, with names that would break the line escaped.
func TestInfoModels(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	c := ts.client(t, &redis.Options{Protocol: 2})
	for _, cmd := range [][]any{
		{"MODEL.ROLLOUT", "openai/clip-vit-large-patch14", "v1"},
		{"MODEL.ROLLOUT", "odd:name,x=y", "2024-01=b"},
		{"SET", "{openai/clip-vit-large-patch14}a", "1"},
		{"GET", "{openai/clip-vit-large-patch14}a"},
		{"GET", "{openai/clip-vit-large-patch14@v1}a"}, // another key: a miss
		{"GET", "{openai/clip-vit-large-patch14}b"},
		{"MGET", "{odd:name,x=y}a", "plain"},
		{"SET", "plain", "p"},
		{"GET", "plain"},
		{"GET", "{nobody}x"},
	} {
		if err := c.Do(ctx, cmd...).Err(); err != nil && err != redis.Nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	info, err := c.Info(ctx, "models").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := "# Models\r\n" +
		"model_odd%3Aname%2Cx%3Dy:version=2024-01%3Db,hits=0,misses=1,hit_ratio=0.0000\r\n" +
		"model_openai/clip-vit-large-patch14:version=v1,hits=1,misses=2,hit_ratio=0.3333\r\n" +
		"unscoped:hits=1,misses=1,hit_ratio=0.5000\r\n" +
		"unregistered:hits=0,misses=1,hit_ratio=0.0000\r\n"
	if info != want {
		t.Errorf("INFO models =\n%s\nwant\n%s", info, want)
	}
	all, err := c.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(all, "# Models\r\n") {
		t.Error("INFO without a section has no # Models")
	}
}

const pyModelsScript = `
import sys
import redis

r = redis.Redis(unix_socket_path=sys.argv[1], socket_timeout=30)
r.execute_command('MODEL.ROLLOUT', 'clip', 'v3')
r.set('{clip}hit', b'x')
for k in ['{clip}hit', '{clip}hit', '{clip}miss', 'plain']:
    r.get(k)
m = r.info('models')
assert m['model_clip'] == {'version': 'v3', 'hits': 2, 'misses': 1, 'hit_ratio': 0.6667}, m
assert m['unscoped'] == {'hits': 0, 'misses': 1, 'hit_ratio': 0.0}, m
assert m['unregistered']['hits'] == 0, m
print('python models ok')
`

// TestInfoModelsPython: redis-py's INFO parser reads # Models into one
// dict per model.
func TestInfoModelsPython(t *testing.T) {
	py := pythonWithRedis(t)
	ts := startServer(t, nil)
	out, err := runTool(t, "", py, "-c", pyModelsScript, ts.sock)
	if err != nil || !strings.Contains(out, "python models ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
