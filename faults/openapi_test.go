//go:build faults

package faults

import (
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// fuzzOp is one operation of the document.
type fuzzOp struct {
	method, template string
	params           []fuzzParam
	bodyType         string         // "" when the operation takes no body
	bodySchema       map[string]any // resolved
}

type fuzzParam struct {
	name, in string
	schema   map[string]any
}

var pathVar = regexp.MustCompile(`\{([^}]+)\}`)

// operations lists the document's operations, reads before writes and
// deletes last (so fixtures live as long as possible), then by path.
func operations(doc map[string]any) []fuzzOp {
	rank := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
	paths, _ := doc["paths"].(map[string]any)
	var ops []fuzzOp
	for template, item := range paths {
		methods, _ := item.(map[string]any)
		for m, raw := range methods {
			method := strings.ToUpper(m)
			if _, ok := rank[method]; !ok {
				continue
			}
			op, _ := raw.(map[string]any)
			fo := fuzzOp{method: method, template: template}
			declared := map[string]bool{}
			for _, p := range asList(op["parameters"]) {
				pm, _ := p.(map[string]any)
				name, _ := pm["name"].(string)
				in, _ := pm["in"].(string)
				fo.params = append(fo.params, fuzzParam{name: name, in: in, schema: resolve(doc, pm["schema"])})
				declared[in+":"+name] = true
			}
			// Path variables the document forgot to declare are fuzzed all the same.
			for _, m := range pathVar.FindAllStringSubmatch(template, -1) {
				if !declared["path:"+m[1]] {
					fo.params = append(fo.params, fuzzParam{name: m[1], in: "path", schema: map[string]any{"type": "string"}})
				}
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				content, _ := rb["content"].(map[string]any)
				for _, ct := range slices.Sorted(maps.Keys(content)) {
					mt, _ := content[ct].(map[string]any)
					fo.bodyType, fo.bodySchema = ct, resolve(doc, mt["schema"])
					break
				}
			}
			ops = append(ops, fo)
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if rank[ops[i].method] != rank[ops[j].method] {
			return rank[ops[i].method] < rank[ops[j].method]
		}
		return ops[i].template < ops[j].template
	})
	return ops
}

// resolve follows a local $ref ("#/components/schemas/X").
func resolve(doc map[string]any, s any) map[string]any {
	m, _ := s.(map[string]any)
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cm, _ := cur.(map[string]any)
			cur = cm[part]
		}
		m, _ = cur.(map[string]any)
	}
	return m
}

// schemaType returns the schema's type, the first that is not "null".
func schemaType(s map[string]any) string {
	switch v := s["type"].(type) {
	case string:
		return v
	case []any:
		for _, t := range v {
			if ts, ok := t.(string); ok && ts != "null" {
				return ts
			}
		}
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	return ""
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
