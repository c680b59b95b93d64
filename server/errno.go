package server

import "syscall"

// errTooManyFiles is what Accept returns when the process is out of file
// descriptors: the server waits and retries rather than failing.
var errTooManyFiles = syscall.EMFILE
