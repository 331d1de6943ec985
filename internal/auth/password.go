package auth

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"github.com/beaconhq/beacon/internal/config"
)

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 12

// HashPassword hashes a password with bcrypt at cost.
func HashPassword(password string, cost int) (string, error) {
	if len(password) > 72 {
		// bcrypt ignores bytes past 72; refuse rather than silently truncate.
		return "", errors.New("password must be at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// checkPassword compares in constant time for the hash.
func checkPassword(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// ValidatePassword checks a new password's strength.
func ValidatePassword(p string) error {
	if len(p) < MinPasswordLen {
		return fmt.Errorf("must be at least %d characters", MinPasswordLen)
	}
	if len(p) > 72 {
		return errors.New("must be at most 72 bytes")
	}
	if config.IsPlaceholder(p) {
		return errors.New("is a placeholder, not a password")
	}
	return nil
}
