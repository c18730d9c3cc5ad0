//go:build unix && !linux

package tokenpipe

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// credentialsRequired says whether a datagram without the sender's
// credentials is dropped. Only Linux attaches them to every datagram
// (SO_PASSCRED); elsewhere the socket's private directory (mode 0700) is
// what keeps other users out.
const credentialsRequired = false

// credentialsSize is the size of the credentials a datagram carries.
const credentialsSize = 0

// passCredentials asks the kernel to attach the sender's credentials to every
// datagram the socket receives.
func passCredentials(c syscall.RawConn) error { return nil }

// parseCredentials returns the sender's user id if h and data are its
// credentials.
func parseCredentials(h *unix.Cmsghdr, data []byte) (uid int, ok bool) { return 0, false }

// childIDs returns the user and group that attr makes the child run as; ok
// is false where it sets none.
func childIDs(attr *syscall.SysProcAttr) (uid, gid int, ok bool) {
	if attr == nil || attr.Credential == nil {
		return 0, 0, false
	}
	return int(attr.Credential.Uid), int(attr.Credential.Gid), true
}
