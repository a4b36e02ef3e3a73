package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// Limits on one manifest. Anything larger is refused before it is parsed, so a
// hostile or runaway file cannot make podsup allocate without bound. The YAML
// parser itself refuses alias bombs and nesting deeper than 10000.
const (
	// MaxManifestBytes bounds a file, a URL body or a pushed body. A ConfigMap
	// may hold 1 MiB in Kubernetes; four of them and a pod still fit.
	MaxManifestBytes = 4 << 20
	// MaxDocuments bounds the YAML documents, and the items of lists, in one manifest.
	MaxDocuments = 1000
)

// Objects is everything one manifest declares, in the order it declares it.
type Objects struct {
	Pods       []*v1.Pod
	ConfigMaps []*v1.ConfigMap
	Secrets    []*v1.Secret
	// Warnings are problems that do not stop the manifest from being used,
	// such as unknown fields (a typo like imagePullPolcy).
	Warnings []*Error
	// PodWarnings are the warnings about each pod, by its UID, for the
	// pod's events: a UID is one version of a pod.
	PodWarnings map[types.UID][]*Error

	where  map[any]string   // where each object was found, for messages
	warned map[any][]*Error // the decoder's warnings about each object
}

// at is where obj was found: "web.yaml: document 2 (line 7)"; origin when
// the manifest holds one document.
func (o *Objects) at(obj any, origin string) string {
	if w, ok := o.where[obj]; ok {
		return w
	}
	return origin
}

func (o *Objects) found(obj any, where string) {
	if o.where == nil {
		o.where = map[any]string{}
	}
	o.where[obj] = where
}

// podWarned records the warnings about a pod, once it has its UID: the
// decoder's and the validator's.
func (o *Objects) podWarned(pod *v1.Pod, origin string, validator []*Error) {
	all := concatCapped(append([]*Error(nil), o.warned[pod]...), origin, validator)
	if len(all) == 0 {
		return
	}
	if o.PodWarnings == nil {
		o.PodWarnings = map[types.UID][]*Error{}
	}
	o.PodWarnings[pod.UID] = concatCapped(o.PodWarnings[pod.UID], origin, all)
}

func (o *Objects) count() int { return len(o.Pods) + len(o.ConfigMaps) + len(o.Secrets) }

// document is one YAML document of a manifest and the line it starts on.
type document struct {
	line int
	data []byte
}

// Decode parses a manifest holding one Pod, a v1 PodList or List, a ConfigMap,
// a Secret, or several of those as YAML documents separated by "---". JSON is
// accepted as the YAML subset it is. Decode neither defaults nor validates;
// Parse does both.
func Decode(origin string, data []byte) (*Objects, error) {
	if len(data) > MaxManifestBytes {
		return nil, newError(origin, "", "", "manifest is %d bytes, more than the limit of %d", len(data), MaxManifestBytes)
	}
	if !utf8.Valid(data) {
		return nil, newError(origin, "", "", "manifest is not valid UTF-8 text")
	}
	objs := &Objects{}
	var errs ErrorList
	docs := splitDocuments(data)
	for i, doc := range docs {
		if i >= MaxDocuments {
			errs = append(errs, newError(origin, "", "", "more than %d documents in one manifest", MaxDocuments))
			break
		}
		where := origin
		if len(docs) > 1 {
			where = fmt.Sprintf("%s: document %d (line %d)", origin, i+1, doc.line)
		}
		errs = concatCapped(errs, origin, decodeDocument(where, doc, objs))
		if objs.count() > MaxDocuments {
			errs = append(errs, newError(origin, "", "", "more than %d objects in one manifest", MaxDocuments))
			break
		}
	}
	return objs, errs.errOrNil()
}

// splitDocuments cuts a YAML stream at lines that are exactly "---" (as
// apimachinery's YAML reader does) and keeps the line each document starts on,
// so errors can point at it. Empty documents are dropped.
func splitDocuments(data []byte) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	var docs []document
	start, startLine, line := 0, 1, 1
	flush := func(end int) {
		if chunk := data[start:end]; !blank(chunk) {
			docs = append(docs, document{line: startLine, data: chunk})
		}
	}
	for pos := 0; pos < len(data); line++ {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			next = pos + end + 1
		}
		if isSeparator(data[pos:next]) {
			flush(pos)
			start, startLine = next, line+1
		}
		pos = next
	}
	flush(len(data))
	return docs
}

func isSeparator(line []byte) bool {
	return string(bytes.TrimRight(line, " \t\r\n")) == "---"
}

// blank reports whether a document holds nothing but white space and comments.
func blank(doc []byte) bool {
	for _, l := range bytes.Split(doc, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// typeMeta is the part of every object that says what it is.
type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

func decodeDocument(where string, doc document, objs *Objects) ErrorList {
	js, err := yaml.YAMLToJSONStrict(doc.data)
	if err != nil {
		return ErrorList{newError(where, "", "", "%s", fileLines(cleanYAMLError(err), doc.line-1))}
	}
	if string(bytes.TrimSpace(js)) == "null" {
		return nil
	}
	return decodeObject(where, js, objs, true)
}

// decodeObject decodes one JSON object by its kind. Lists may hold objects but
// not further lists.
func decodeObject(where string, js []byte, objs *Objects, listAllowed bool) ErrorList {
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return ErrorList{newError(where, "", "", "not a Kubernetes object: %s", cleanJSONError(err))}
	}
	switch tm.Kind {
	case "Pod", "ConfigMap", "Secret", "PodList", "List", "ConfigMapList", "SecretList":
		if tm.APIVersion != "v1" {
			msg := fmt.Sprintf("must be v1, not %q", tm.APIVersion)
			if tm.APIVersion == "" {
				msg = "required: must be v1"
			}
			return ErrorList{newError(where, kindName(tm.Kind, js), "apiVersion", "%s", msg)}
		}
	}
	switch tm.Kind {
	case "Pod":
		return decodeAs(where, js, objs, &objs.Pods)
	case "ConfigMap":
		return decodeAs(where, js, objs, &objs.ConfigMaps)
	case "Secret":
		return decodeAs(where, js, objs, &objs.Secrets)
	case "PodList", "List", "ConfigMapList", "SecretList":
		if !listAllowed {
			return ErrorList{newError(where, "", "kind", "a %s inside a list is not supported", tm.Kind)}
		}
		var errs ErrorList
		for i, item := range tm.Items {
			if i >= MaxDocuments {
				return append(errs, newError(where, "", "items", "more than %d items", MaxDocuments))
			}
			errs = concatCapped(errs, where, decodeObject(fmt.Sprintf("%s: items[%d]", where, i), item, objs, false))
		}
		return errs
	case "":
		return ErrorList{newError(where, "", "kind", "required: one of Pod, PodList, ConfigMap, Secret")}
	default:
		return ErrorList{newError(where, "", "kind", "%q is not supported: podsup reads Pod, PodList, List, ConfigMap and Secret", tm.Kind)}
	}
}

// decodeAs decodes js as a *T and appends it to list.
func decodeAs[T any](where string, js []byte, objs *Objects, list *[]*T) ErrorList {
	obj := new(T)
	if errs := decodeInto(where, js, obj, objs); errs != nil {
		return errs
	}
	*list = append(*list, obj)
	objs.found(obj, where)
	return nil
}

// decodeInto decodes js into obj with encoding/json, which refuses wrong types
// and overflowing numbers, and then lists the fields it did not know as warnings.
func decodeInto(where string, js []byte, obj any, objs *Objects) ErrorList {
	name := objectName(obj, js)
	if err := json.Unmarshal(js, obj); err != nil {
		var generic any
		_ = json.Unmarshal(js, &generic)
		return ErrorList{newError(where, name, findBadField(generic, obj), "%s", cleanJSONError(err))}
	}
	var generic map[string]any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil
	}
	scratch := newOfSameType(obj)
	err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(generic, scratch, true)
	if strict, ok := runtime.AsStrictDecodingError(err); ok {
		for _, e := range strict.Errors() {
			objs.Warnings = appendCapped(objs.Warnings, where, func() *Error {
				w := newError(where, name, unknownFieldPath(e.Error()), "unknown field, ignored (a typo?)")
				if objs.warned == nil {
					objs.warned = map[any][]*Error{}
				}
				objs.warned[obj] = append(objs.warned[obj], w)
				return w
			})
		}
	}
	return nil
}

// unknownFieldPath extracts spec.x from the converter's `unknown field "spec.x"`.
func unknownFieldPath(msg string) string {
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		if j := strings.LastIndexByte(msg, '"'); j > i {
			return msg[i+1 : j]
		}
	}
	return msg
}

// objectName names an object for messages ("pod web") before it is fully
// decoded, from the metadata alone.
func objectName(obj any, js []byte) string {
	var meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(js, &meta)
	kind := meta.Kind
	switch obj.(type) {
	case *v1.Pod:
		kind = "Pod"
	case *v1.ConfigMap:
		kind = "ConfigMap"
	case *v1.Secret:
		kind = "Secret"
	}
	return describe(kind, meta.Metadata.Name)
}

func kindName(kind string, js []byte) string {
	if kind == "" {
		return ""
	}
	var meta struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(js, &meta)
	return describe(kind, meta.Metadata.Name)
}

func describe(kind, name string) string {
	if name == "" {
		return strings.ToLower(kind) + " (unnamed)"
	}
	return strings.ToLower(kind) + " " + name
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// fileLines makes the parser's line numbers, which count from the start of
// the document, count from the start of the file.
func fileLines(msg string, offset int) string {
	return yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, err := strconv.Atoi(strings.TrimPrefix(m, "line "))
		if err != nil {
			return m
		}
		return "line " + strconv.Itoa(n+offset)
	})
}

// cleanYAMLError drops the converter's prefixes; the line number stays.
func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.ReplaceAll(msg, "yaml: unmarshal errors:\n  ", "yaml: ")
	return strings.Join(strings.Fields(msg), " ")
}

// cleanJSONError turns encoding/json's wording, which names Go types, into
// wording about the manifest.
func cleanJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if asTypeError(err, &typeErr) {
		return fmt.Sprintf("wrong type: got %s, want %s", typeErr.Value, jsonKind(typeErr.Type.Kind().String()))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "an integer in range"
	case strings.HasPrefix(goKind, "float"):
		return "a number"
	case goKind == "string":
		return "a string"
	case goKind == "bool":
		return "true or false"
	case goKind == "slice", goKind == "array":
		return "a list"
	case goKind == "map", goKind == "struct", goKind == "ptr":
		return "an object"
	}
	return goKind
}
