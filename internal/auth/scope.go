package auth

import "strconv"

// Scope is whose resources an operation may see or touch: one user's
// (OwnedBy) or every user's (AllUsers, for admin operations). Everyone's is
// only ever asked for by name: no user id means it, and the zero Scope, like
// OwnedBy(0), matches nothing.
type Scope struct {
	all    bool
	userID int64
}

// AllUsers is the scope of every user's resources.
func AllUsers() Scope { return Scope{all: true} }

// OwnedBy is the scope of one user's resources. OwnedBy(0), a request
// without a principal, matches nothing: no user has id 0.
func OwnedBy(userID int64) Scope { return Scope{userID: userID} }

// All reports whether s is every user's resources.
func (s Scope) All() bool { return s.all }

// UserID is the user whose resources s covers; meaningless when All.
func (s Scope) UserID() int64 { return s.userID }

func (s Scope) String() string {
	if s.all {
		return "all users"
	}
	return "user " + strconv.FormatInt(s.userID, 10)
}
