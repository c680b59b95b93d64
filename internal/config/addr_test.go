package config

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckListenAddr(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:6380", true},
		{"127.0.0.1:0", true},
		{":9100", true},
		{"[::1]:4222", true},
		{"localhost:65535", true},
		{"localhost", false},
		{"127.0.0.1:", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:-1", false},
		{"127.0.0.1:http", false},
		{"::1:80", false},
		{"", false},
	} {
		err := CheckListenAddr(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListenAddr(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrAddr) {
			t.Errorf("CheckListenAddr(%q) = %v, not ErrAddr", tc.in, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:6380": true, "127.1.2.3:0": true, "[::1]:4222": true, "localhost:6380": true,
		"LocalHost:1": true, "[::ffff:127.0.0.1]:1": true,
		"0.0.0.0:6380": false, ":6380": false, "[::]:6380": false, "10.0.0.1:6380": false,
		"192.168.1.2:1": false, "example.com:1": false, "localhost.example.com:1": false,
		"[fe80::1]:1": false, "128.0.0.1:1": false, "127.0.0.1": false, "": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestParseNATSURLs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		n       int
		errPart string
	}{
		{"nats://127.0.0.1:4222", 1, ""},
		{"nats://a:4222,tls://b:4223, ws://c:8080 ,wss://d", 4, ""},
		{"nats://user:secret@a:4222", 1, ""},
		{"nats://token@a", 1, ""},
		{"wss://host:443/nats", 1, ""},
		{"nats://[::1]:4222", 1, ""},
		{"http://a:4222", 0, `"http://a:4222": not a nats://, tls://, ws:// or wss:// URL`},
		{"127.0.0.1:4222", 0, "not a nats://"},
		{"nats:127.0.0.1:4222", 0, "not a nats://"},
		{"nats://", 0, "has no host"},
		{"nats://:4222", 0, "has no host"},
		{"nats://a:99999", 0, `port "99999"`},
		{"nats://a:0", 0, `port "0"`},
		{"nats://a:", 0, `port ""`},
		{"nats://a:4222/path", 0, "no path or query"},
		{"nats://a:1,,nats://b:2", 0, "empty URL in the list"},
		{"nats://a:1,ftp://b:2,nats://c:x", 0, `"ftp://b:2": not`},
		{"nats://user:secret@a:99999", 0, "xxxxx"},
	} {
		urls, err := ParseNATSURLs(tc.in)
		if tc.errPart == "" {
			if err != nil || len(urls) != tc.n {
				t.Errorf("ParseNATSURLs(%q) = %d URLs, %v; want %d", tc.in, len(urls), err, tc.n)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errPart) || !errors.Is(err, ErrAddr) {
			t.Errorf("ParseNATSURLs(%q) error %v; want one containing %q", tc.in, err, tc.errPart)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseNATSURLs(%q) error %v shows the password", tc.in, err)
		}
	}
}

func TestParseNATSURLsReportsEveryURL(t *testing.T) {
	_, err := ParseNATSURLs("http://a,nats://b:1,nats://c:x")
	if err == nil || !strings.Contains(err.Error(), `"http://a"`) || !strings.Contains(err.Error(), "nats://c:x") {
		t.Fatalf("error %v does not name both bad URLs", err)
	}
}

func TestRedactNATSURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://a:4222":                       "nats://a:4222",
		"nats://user:secret@a:4222,tls://b:1": "nats://user:xxxxx@a:4222,tls://b:1",
		"nats://s3cr3tt0ken@a:4222":           "nats://xxxxx@a:4222",
		"nats://us er:secret@a:%zz":           "nats://…",
	} {
		if got := RedactNATSURLs(in); got != want {
			t.Errorf("RedactNATSURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
