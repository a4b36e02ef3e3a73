package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

func asTypeError(err error, target **json.UnmarshalTypeError) bool { return errors.As(err, target) }

func newOfSameType(obj any) any { return reflect.New(reflect.TypeOf(obj).Elem()).Interface() }

// findBadField returns the field path, with list indexes, of the first value
// in the decoded JSON that does not decode into obj's type. encoding/json
// names the field without indexes (spec.containers.ports.containerPort) and
// the custom decoders of quantities and int-or-strings name none at all; a
// person needs spec.containers[1].ports[0].containerPort. This runs only when
// decoding already failed, so its cost does not matter.
func findBadField(generic any, obj any) string {
	path, _ := badLeaf(generic, reflect.TypeOf(obj).Elem(), "")
	return path
}

func badLeaf(v any, t reflect.Type, path string) (string, bool) {
	if decodes(v, t) {
		return "", false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return path, true // Quantity, IntOrString, Time: a leaf with its own syntax
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return path, true
		}
		fields := jsonFields(t)
		for _, name := range sortedKeys(m) {
			if f, known := fields[name]; known {
				if p, bad := badLeaf(m[name], f.Type, joinField(path, name)); bad {
					return p, true
				}
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok || t.Elem().Kind() == reflect.Uint8 {
			return path, true
		}
		for i, e := range arr {
			if p, bad := badLeaf(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); bad {
				return p, true
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return path, true
		}
		for _, k := range sortedKeys(m) {
			if p, bad := badLeaf(m[k], t.Elem(), fmt.Sprintf("%s[%s]", path, k)); bad {
				return p, true
			}
		}
	}
	return path, true
}

// decodes reports whether the JSON value v decodes into a value of type t.
func decodes(v any, t reflect.Type) bool {
	js, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return json.Unmarshal(js, reflect.New(t).Interface()) == nil
}

// jsonFields maps the JSON names of a struct's fields, inline members'
// fields included, to the fields; an inline member's field has the index
// path from the outer struct.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") || (f.Anonymous && name == "") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for n, inner := range jsonFields(ft) {
					inner.Index = append([]int{i}, inner.Index...)
					fields[n] = inner
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f
	}
	return fields
}

func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
