package smlocal

import (
	"encoding/json"
	"path"
	"strings"
)

// Resource policies: PutResourcePolicy ("Attaches a resource-based permission
// policy to a secret"), GetResourcePolicy, DeleteResourcePolicy, and the one
// part of IAM's policy evaluation the emulator models: "An explicit deny in
// any of these policies overrides the allow" (IAM user guide, "Policy
// evaluation logic"). With no IAM behind the emulator every call is otherwise
// allowed, so only a Deny statement changes anything: one whose Principal
// names the caller (its ARN, "*", or the role an assumed-role session belongs
// to), whose Action matches "secretsmanager:<Operation>" (with * wildcards),
// and whose Resource is "*" or matches the secret's ARN. Statements with
// Condition, NotPrincipal, NotAction or NotResource are kept and not
// evaluated (README: not implemented).

type statement struct {
	Effect       string
	Principal    any
	Action       any
	Resource     any
	Condition    any
	NotPrincipal any
	NotAction    any
	NotResource  any
}

type policyDoc struct {
	Statement json.RawMessage
}

func strs(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func parseStatements(policy string) ([]statement, bool) {
	var doc policyDoc
	if err := json.Unmarshal([]byte(policy), &doc); err != nil || len(doc.Statement) == 0 {
		return nil, false
	}
	var list []statement
	if err := json.Unmarshal(doc.Statement, &list); err != nil {
		var one statement
		if err := json.Unmarshal(doc.Statement, &one); err != nil {
			return nil, false
		}
		list = []statement{one}
	}
	return list, true
}

func globMatch(pattern, s string) bool {
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", "\x00"), strings.ReplaceAll(s, "/", "\x00"))
	return err == nil && ok
}

// principalMatches: the statement's Principal names the caller. A role ARN
// matches every session of that role.
func principalMatches(p any, caller string) bool {
	if s, ok := p.(string); ok {
		return s == "*"
	}
	m, ok := p.(map[string]any)
	if !ok {
		return false
	}
	for _, want := range strs(m["AWS"]) {
		if want == "*" || want == caller {
			return true
		}
		if acct, role, ok := splitIAM(want, "role/"); ok &&
			strings.HasPrefix(caller, "arn:aws:sts::"+acct+":assumed-role/"+path.Base(role)+"/") {
			return true
		}
	}
	return false
}

// denied returns the AccessDeniedException for a call an explicit Deny
// refuses, or nil. Callers hold s.mu.
func (s *Server) denied(op string, body []byte, caller string) *apiError {
	var in idIn
	if json.Unmarshal(body, &in) != nil || in.SecretId == nil || *in.SecretId == "" {
		return nil
	}
	sec, err := s.find(in.SecretId)
	if err != nil || sec.policy == "" {
		return nil
	}
	list, _ := parseStatements(sec.policy)
	action := "secretsmanager:" + op
	for _, st := range list {
		if st.Effect != "Deny" || st.Condition != nil || st.NotPrincipal != nil || st.NotAction != nil || st.NotResource != nil {
			continue
		}
		if !principalMatches(st.Principal, caller) {
			continue
		}
		actionHit := false
		for _, a := range strs(st.Action) {
			if globMatch(strings.ToLower(a), strings.ToLower(action)) {
				actionHit = true
			}
		}
		resourceHit := false
		for _, r := range strs(st.Resource) {
			if r == "*" || globMatch(r, sec.arn) {
				resourceHit = true
			}
		}
		if actionHit && resourceHit {
			// IAM user guide, "Access denied error messages": "User:
			// <principal> is not authorized to perform: <action> on resource:
			// <resource> with an explicit deny in a resource-based policy".
			return errf("AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s with an explicit deny in a resource-based policy",
				caller, action, *in.SecretId)
		}
	}
	return nil
}

func (s *Server) putResourcePolicy(body []byte) (any, *apiError) {
	var in struct {
		SecretId          *string
		ResourcePolicy    *string
		BlockPublicPolicy *bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ResourcePolicy == nil || *in.ResourcePolicy == "" {
		return nil, invalidParam("ResourcePolicy is required.")
	}
	if _, ok := parseStatements(*in.ResourcePolicy); !ok {
		return nil, errf("MalformedPolicyDocumentException", "The policy document is not valid JSON or has no Statement.")
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	sec.policy = *in.ResourcePolicy
	return struct{ ARN, Name string }{sec.arn, sec.name}, nil
}

func (s *Server) getResourcePolicy(body []byte) (any, *apiError) {
	var in idIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	return struct {
		ARN, Name      string
		ResourcePolicy string `json:",omitempty"`
	}{sec.arn, sec.name, sec.policy}, nil
}

func (s *Server) deleteResourcePolicy(body []byte) (any, *apiError) {
	var in idIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	sec.policy = ""
	return struct{ ARN, Name string }{sec.arn, sec.name}, nil
}
