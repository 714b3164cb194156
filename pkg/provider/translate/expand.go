package translate

import (
	"strings"
	"unicode/utf8"
)

// This file reimplements the kubelet's $(VAR) expansion
// (k8s.io/kubernetes/third_party/forked/golang/expansion) so that env values,
// command and args expand exactly as they would on a node:
//
//   - $(NAME) is replaced by NAME's value if NAME is defined;
//   - $(NAME) of an undefined NAME is left as it is;
//   - $$ is an escaped $, so $$(NAME) gives $(NAME);
//   - a $ not followed by ( or $, and an unterminated $(, are kept as written.

// expand replaces the variable references in input using mapping.
func expand(input string, mapping func(string) string) string {
	var buf strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] == '$' && cursor+1 < len(input) {
			buf.WriteString(input[checkpoint:cursor])
			read, isVar, advance := readVariableName(input[cursor+1:])
			if isVar {
				buf.WriteString(mapping(read))
			} else {
				buf.WriteString(read)
			}
			cursor += advance
			checkpoint = cursor + 1
		}
	}
	return buf.String() + input[checkpoint:]
}

// readVariableName reads what follows a $: it returns the text read, whether
// it is a variable name to map, and how many bytes of input it consumed.
func readVariableName(input string) (string, bool, int) {
	r, size := utf8.DecodeRuneInString(input)
	switch r {
	case '$':
		return input[:size], false, size
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	default:
		// As in Kubernetes, an invalid UTF-8 byte here comes out as U+FFFD.
		return "$" + string(r), false, size
	}
}

// mappingFor returns a mapping for expand that looks names up in vars and
// leaves undefined references as $(NAME).
func mappingFor(vars map[string]string) func(string) string {
	return func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
}
