package auth

// InvalidationLive reports whether user states may be remembered (tests).
func (s *Service) InvalidationLive() bool { return s.users.live.Load() }
