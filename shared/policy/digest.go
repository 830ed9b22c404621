package policy

import "github.com/wedsync/backup-replication/shared/catalog"

// CopyDigest is what every provider copy of b must hold, and what a
// verified replica records: the sealed object's SHA-256 and size once the
// seal step has recorded b.Seal (providers only ever hold ciphertext,
// issue 8), b's declared SHA-256 and size before that (and for backups
// from before sealing existed).
func CopyDigest(b catalog.Backup) (sha256 string, size int64) {
	if b.Seal != nil {
		return b.Seal.CipherSHA256, b.Seal.CipherSize
	}
	return b.SHA256, b.Size
}
