//go:build dragonfly || freebsd || netbsd || openbsd

package tokenpipe

import "golang.org/x/sys/unix"

// recvFlags makes recvmsg mark the descriptors it installs close-on-exec at
// once, so that no child started meanwhile inherits them.
const recvFlags = unix.MSG_CMSG_CLOEXEC
