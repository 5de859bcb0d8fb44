//go:build !linux

package hostfiles

// defaultTCPTableDir is empty where there is no /proc/net: TCPTable{}
// fails every lookup, so an owner check over it refuses every local peer.
const defaultTCPTableDir = ""
