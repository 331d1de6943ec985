// Package apperr is Beacon's one error vocabulary. Domain code returns these
// codes; the HTTP layer maps them to status codes in exactly one place, so
// internal text (SQL, stack, addresses) never reaches a client.
package apperr

import (
	"errors"
	"fmt"
)

// Code classifies an error for callers.
type Code string

// Error codes. Anything without a code is internal.
const (
	Invalid     Code = "invalid"     // the input breaks a rule
	NotFound    Code = "not_found"   // no such resource (or not the caller's)
	Conflict    Code = "conflict"    // the state forbids the operation
	Unavailable Code = "unavailable" // a dependency is not ready; retry later
	Internal    Code = "internal"
)

// Error is an error whose Message is safe to show to a client.
type Error struct {
	Code    Code
	Message string
	// Field names the input at fault for Invalid errors ("body.url").
	Field string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf builds an Error whose message is safe to show.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidField reports a broken rule on one input field.
func InvalidField(field, format string, args ...any) *Error {
	return &Error{Code: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err, or Internal when it carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
