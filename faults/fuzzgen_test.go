//go:build faults

package faults

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// fuzzCase is one request to send.
type fuzzCase struct {
	label       string
	path        string // with the query
	body        []byte
	contentType string
	header      http.Header
	noToken     bool
}

// fuzzGen makes the requests of each operation.
type fuzzGen struct {
	doc      map[string]any
	rng      *rand.Rand
	huge     string
	target   string
	fixtures map[string]string
	n        int // makes generated names unique
}

// mutation changes one part of a valid-looking request.
type mutation struct {
	label   string
	must    bool // always sent; the others are sampled to fit the budget
	path    map[string]string
	query   url.Values
	header  http.Header
	body    func() ([]byte, string) // nil: the base body
	noToken bool
}

// cases returns the requests for op: the base request and every mandatory
// mutation, then a seeded sample of the others, limit in all.
func (g *fuzzGen) cases(op fuzzOp, limit int) []fuzzCase {
	var must, rest []mutation
	add := func(m mutation) {
		if m.must {
			must = append(must, m)
		} else {
			rest = append(rest, m)
		}
	}
	add(mutation{label: "base", must: true})
	add(mutation{label: "base, no token", must: true, noToken: true})

	for _, p := range op.params {
		typ := schemaType(p.schema)
		switch p.in {
		case "path":
			for _, v := range []struct{ label, value string }{
				{"NUL", "1\x00"}, {"100 KB", g.huge}, {"wrong type", "abc"}, {"negative", "-1"},
				{"zero", "0"}, {"huge number", "99999999999999999999"},
			} {
				add(mutation{label: "path " + p.name + ": " + v.label, must: v.label == "NUL", path: map[string]string{p.name: v.value}})
			}
		case "query":
			values := []struct{ label, value string }{{"NUL", "a\x00b"}, {"100 KB", g.huge}}
			switch typ {
			case "integer", "number":
				values = append(values, struct{ label, value string }{"wrong type", "abc"},
					struct{ label, value string }{"negative", "-1"},
					struct{ label, value string }{"huge number", "99999999999999999999"})
			default:
				values = append(values, struct{ label, value string }{"wrong type", "{[\"x\"]}"})
			}
			for _, v := range values {
				add(mutation{label: "query " + p.name + ": " + v.label, must: v.label == "NUL", query: url.Values{p.name: {v.value}}})
			}
		case "header":
			scheme := "" // Authorization keeps its scheme, so the value is what is parsed
			if strings.EqualFold(p.name, "Authorization") {
				scheme = "Basic "
			}
			for _, v := range []struct{ label, value string }{{"100 KB", scheme + g.huge}, {"garbage", scheme + "%%%"}} {
				add(mutation{label: "header " + p.name + ": " + v.label, header: http.Header{p.name: {v.value}}})
			}
		}
	}

	switch {
	case op.bodyType == "application/json":
		g.jsonMutations(op, add)
	case op.bodyType == "application/x-www-form-urlencoded":
		g.formMutations(op, add)
	}
	if op.bodyType != "" {
		// Without a token, with a broken body: authentication comes first.
		add(mutation{label: "invalid body, no token", noToken: true, body: func() ([]byte, string) { return []byte(`{"`), op.bodyType }})
	}

	// Every mandatory one, then a seeded sample of the rest to fill limit.
	g.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	all := append(must, rest[:min(len(rest), max(0, limit-len(must)))]...)
	out := make([]fuzzCase, len(all))
	for i, m := range all {
		out[i] = g.build(op, m)
	}
	return out
}

// jsonMutations adds the body mutations of a JSON operation.
func (g *fuzzGen) jsonMutations(op fuzzOp, add func(mutation)) {
	raw := func(label, body, ct string, must bool) {
		add(mutation{label: label, must: must, body: func() ([]byte, string) { return []byte(body), ct }})
	}
	raw("invalid JSON", `{"name": "x",`, "application/json", true)
	raw("body is an array", `[1, 2]`, "application/json", false)
	raw("body is null", `null`, "application/json", false)
	raw("missing required fields", `{}`, "application/json", true)
	add(mutation{label: "wrong content type (text/plain)", must: true, body: func() ([]byte, string) {
		b, _ := json.Marshal(g.value(op.bodySchema, ""))
		return b, "text/plain"
	}})
	add(mutation{label: "wrong content type (form)", body: func() ([]byte, string) { return []byte("name=x"), "application/x-www-form-urlencoded" }})

	props, _ := op.bodySchema["properties"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(props)) {
		ps := resolve(g.doc, props[name])
		set := func(label string, must bool, v any) {
			add(mutation{label: "body " + name + ": " + label, must: must, body: func() ([]byte, string) {
				obj, _ := g.value(op.bodySchema, "").(map[string]any)
				obj[name] = v
				b, _ := json.Marshal(obj)
				return b, "application/json"
			}})
		}
		switch schemaType(ps) {
		case "string":
			set("NUL", true, "fuzz\x00nul")
			set("100 KB", false, g.huge)
			set("wrong type", false, 12345)
		case "integer", "number":
			set("wrong type", false, "not a number")
			set("negative", false, -1)
			set("huge number", false, json.Number("9223372036854775808"))
			set("1e308", false, json.Number("1e308"))
		case "boolean":
			set("wrong type", false, "yes")
		case "array":
			set("wrong type", false, map[string]any{"not": "an array"})
			items := resolve(g.doc, ps["items"])
			switch schemaType(items) {
			case "string":
				set("NUL in an item", true, []any{"fuzz\x00nul"})
			case "integer", "number":
				set("negative item", false, []any{-1})
				set("huge item", false, []any{json.Number("99999999999999999999")})
			}
		case "object":
			set("wrong type", false, []any{1, 2, 3})
		}
	}
}

// formMutations adds the body mutations of a form-encoded operation.
func (g *fuzzGen) formMutations(op fuzzOp, add func(mutation)) {
	props, _ := op.bodySchema["properties"].(map[string]any)
	names := slices.Sorted(maps.Keys(props))
	base := func() url.Values {
		v := url.Values{}
		for _, n := range names {
			v.Set(n, g.formValue(n))
		}
		return v
	}
	add(mutation{label: "wrong content type (JSON)", must: true, body: func() ([]byte, string) { return []byte(`{"grant_type": 1}`), "application/json" }})
	add(mutation{label: "invalid encoding", must: true, body: func() ([]byte, string) { return []byte("%zz=%%&&="), op.bodyType }})
	add(mutation{label: "empty body", body: func() ([]byte, string) { return []byte{}, op.bodyType }})
	for _, n := range names {
		for _, v := range []struct {
			label, value string
			must         bool
		}{{"NUL", "fuzz\x00nul", true}, {"100 KB", g.huge, false}} {
			add(mutation{label: "form " + n + ": " + v.label, must: v.must, body: func() ([]byte, string) {
				f := base()
				f.Set(n, v.value)
				return []byte(f.Encode()), op.bodyType
			}})
		}
	}
}

// formValue is a plausible value of a form field: a password grant for
// someone who does not exist, so every field reaches the handler.
func (g *fuzzGen) formValue(name string) string {
	switch name {
	case "grant_type":
		return "password"
	case "username":
		return "fuzz@faults.example"
	}
	return "fuzz-" + name
}

// build turns a mutation into a request.
func (g *fuzzGen) build(op fuzzOp, m mutation) fuzzCase {
	fc := fuzzCase{label: m.label, noToken: m.noToken, header: m.header}
	path := pathVar.ReplaceAllStringFunc(op.template, func(v string) string {
		name := strings.Trim(v, "{}")
		if val, ok := m.path[name]; ok {
			return url.PathEscape(val)
		}
		return url.PathEscape(g.pathValue(op, name))
	})
	if len(m.query) > 0 {
		path += "?" + m.query.Encode()
	}
	fc.path = path
	switch {
	case m.body != nil:
		fc.body, fc.contentType = m.body()
	case op.bodyType == "application/json":
		fc.body, _ = json.Marshal(g.value(op.bodySchema, ""))
		fc.contentType = op.bodyType
	case op.bodyType == "application/x-www-form-urlencoded":
		props, _ := op.bodySchema["properties"].(map[string]any)
		v := url.Values{}
		for _, n := range slices.Sorted(maps.Keys(props)) {
			v.Set(n, g.formValue(n))
		}
		fc.body, fc.contentType = []byte(v.Encode()), op.bodyType
	}
	return fc
}

// pathValue is the valid-looking value of a path variable: a fixture's id
// for the caller's own resources, else an id nobody has.
func (g *fuzzGen) pathValue(op fuzzOp, name string) string {
	for prefix, v := range g.fixtures {
		if strings.HasPrefix(op.template, prefix) && strings.HasSuffix(prefix, "{"+name+"}") {
			return v
		}
	}
	for _, p := range op.params {
		if p.name == name && p.in == "path" && schemaType(p.schema) == "string" {
			return "fuzz-missing"
		}
	}
	return "999999999"
}

// value returns a valid-looking value of schema s.
func (g *fuzzGen) value(s map[string]any, name string) any {
	s = resolve(g.doc, s)
	if enum := asList(s["enum"]); len(enum) > 0 {
		return enum[0]
	}
	switch schemaType(s) {
	case "object":
		obj := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		for _, n := range slices.Sorted(maps.Keys(props)) {
			obj[n] = g.value(resolve(g.doc, props[n]), n)
		}
		return obj
	case "array":
		return []any{}
	case "boolean":
		return false
	case "integer", "number":
		if v, ok := s["minimum"].(float64); ok {
			return v
		}
		return 1
	case "string":
		return g.stringValue(s, name)
	}
	return nil
}

func (g *fuzzGen) stringValue(s map[string]any, name string) string {
	g.n++
	switch s["format"] {
	case "email":
		return fmt.Sprintf("fuzz%d@faults.example", g.n)
	case "uri":
		return g.target
	case "date-time":
		return time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	}
	if ex := asList(s["examples"]); len(ex) > 0 {
		if v, ok := ex[0].(string); ok {
			return v
		}
	}
	v := fmt.Sprintf("fuzz-%s-%d", strings.ReplaceAll(name, "_", "-"), g.n)
	if p, ok := s["pattern"].(string); ok {
		if re, err := regexp.Compile(p); err == nil && !re.MatchString(v) {
			v = fmt.Sprintf("fuzz%d", g.n)
		}
	}
	if minLen, ok := s["minLength"].(float64); ok && len(v) < int(minLen) {
		v += strings.Repeat("x", int(minLen)-len(v))
	}
	if maxLen, ok := s["maxLength"].(float64); ok && len(v) > int(maxLen) {
		v = v[:int(maxLen)]
	}
	return v
}
