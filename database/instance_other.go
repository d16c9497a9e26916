//go:build !unix

package database

import "os"

// lockFile does not lock where flock is missing: one process per SQLite
// file is then the operator's to keep.
func lockFile(path string) (*os.File, error) { return nil, nil }

func unlockFile(*os.File) error { return nil }
