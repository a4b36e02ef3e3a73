package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid marks every problem found in a manifest, so callers can tell a
// bad manifest from a failure to read one with errors.Is.
var ErrInvalid = errors.New("invalid manifest")

// Error is one problem in a manifest. It names the origin (a file, a URL or a
// pushed name), the object when one is known, and the field path, so that a
// person can find and fix it: "web.yaml: pod web: spec.containers[0].image: required".
type Error struct {
	Origin string // file path, URL or push name
	Object string // "pod web", "configmap settings"; empty when not known
	Field  string // field path such as spec.containers[0].image; may be empty
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Origin)
	if e.Object != "" {
		b.WriteString(": ")
		b.WriteString(e.Object)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ErrorList is every problem found in one manifest. Validation reports all of
// them at once so a person fixes a file in one pass.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true for a non-empty list.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid && len(l) > 0 }

// Unwrap exposes the individual problems to errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// errOrNil returns nil for an empty list, so a nil ErrorList never becomes a
// non-nil error interface.
func (l ErrorList) errOrNil() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func newError(origin, object, field, format string, args ...any) *Error {
	return &Error{Origin: origin, Object: object, Field: field, Msg: fmt.Sprintf(format, args...)}
}
