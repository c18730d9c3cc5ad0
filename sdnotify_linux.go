package tokenpipe

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// credentialsRequired says whether a datagram without the sender's
// credentials is dropped: on Linux, with SO_PASSCRED set, the kernel attaches
// them to every datagram.
const credentialsRequired = true

// credentialsSize is the size of the credentials a datagram carries.
const credentialsSize = unix.SizeofUcred

// passCredentials asks the kernel to attach the sender's credentials to every
// datagram the socket receives.
func passCredentials(c syscall.RawConn) error {
	var err error
	if ctlErr := c.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); ctlErr != nil {
		return ctlErr
	}
	if err != nil {
		return os.NewSyscallError("setsockopt(SO_PASSCRED)", err)
	}
	return nil
}

// parseCredentials returns the sender's user id if h and data are its
// credentials.
func parseCredentials(h *unix.Cmsghdr, data []byte) (uid int, ok bool) {
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_CREDENTIALS || len(data) < unix.SizeofUcred {
		return 0, false
	}
	cred, err := unix.ParseUnixCredentials(&unix.SocketControlMessage{Header: *h, Data: data})
	if err != nil {
		return 0, false
	}
	return int(cred.Uid), true
}

// recvFlags makes recvmsg mark the descriptors it installs close-on-exec at
// once, so that no child started meanwhile inherits them.
const recvFlags = unix.MSG_CMSG_CLOEXEC
