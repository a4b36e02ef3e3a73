package manifest

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
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

	omitted int // on the last entry of a truncated list: how many were left out
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

// MaxProblems bounds the problems, and separately the warnings, listed for
// one manifest. A hostile file can hold hundreds of thousands (a pod of
// 200000 badly named containers fits in MaxManifestBytes); listing them all
// made a 4 MiB file cost 1.6 GB of allocations and a 76 MB message, kept for
// as long as the file stayed broken.
const MaxProblems = 100

// appendCapped appends the error e makes to list, unless list already holds
// MaxProblems: then e is not even made, only counted in a last entry saying
// how many were left out.
func appendCapped(list []*Error, origin string, e func() *Error) []*Error {
	if len(list) < MaxProblems {
		return append(list, e())
	}
	return omit(list, origin, 1)
}

// concatCapped appends more to list within the cap, carrying over what more
// already left out.
func concatCapped(list []*Error, origin string, more []*Error) []*Error {
	for _, e := range more {
		if e.omitted > 0 {
			list = omit(list, origin, e.omitted)
			continue
		}
		list = appendCapped(list, origin, func() *Error { return e })
	}
	return list
}

// omit counts n problems left out of a full list.
func omit(list []*Error, origin string, n int) []*Error {
	if n := len(list); n == 0 || list[n-1].omitted == 0 {
		list = append(list, &Error{Origin: origin})
	}
	last := list[len(list)-1]
	last.omitted += n
	last.Msg = fmt.Sprintf("and %d more, not listed", last.omitted)
	return list
}

func newError(origin, object, field, format string, args ...any) *Error {
	return &Error{Origin: origin, Object: clip(object), Field: clip(field), Msg: clip(fmt.Sprintf(format, args...))}
}

// maxEcho bounds each part of a message. Messages quote what they refuse,
// and a hostile manifest's name, label or key can be megabytes long.
const maxEcho = 512

// clip shortens s to about maxEcho bytes, keeping its start and its end
// (where the explanation of a quoted value is) and saying how much went.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	head, tail := s[:maxEcho/2], s[len(s)-maxEcho/4:]
	// Cut on rune boundaries: the manifest is valid UTF-8 and stays so.
	for len(head) > 0 && !utf8.RuneStart(s[len(head)]) {
		head = head[:len(head)-1]
	}
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	return fmt.Sprintf("%s...(%d bytes left out)...%s", head, len(s)-len(head)-len(tail), tail)
}
