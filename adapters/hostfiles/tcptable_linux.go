package hostfiles

// defaultTCPTableDir is where TCPTable{} reads: Linux has the tables.
const defaultTCPTableDir = DefaultTCPTableDir
