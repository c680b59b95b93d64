//go:build !linux

package main

import "errors"

func (s *store) serveEpoll(string) error {
	return errors.New("-loop epoll needs Linux")
}
