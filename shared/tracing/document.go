package tracing

// Document is an X-Ray segment document, the fields this exporter fills
// ("AWS X-Ray segment documents").
type Document struct {
	Name        string         `json:"name"`
	ID          string         `json:"id"`
	TraceID     string         `json:"trace_id"`
	StartTime   float64        `json:"start_time"`
	EndTime     float64        `json:"end_time"`
	Type        string         `json:"type,omitempty"`
	ParentID    string         `json:"parent_id,omitempty"`
	Namespace   string         `json:"namespace,omitempty"`
	Fault       bool           `json:"fault,omitempty"`
	Error       bool           `json:"error,omitempty"`
	Cause       *Cause         `json:"cause,omitempty"`
	AWS         map[string]any `json:"aws,omitempty"`
	HTTP        map[string]any `json:"http,omitempty"`
	SQL         map[string]any `json:"sql,omitempty"`
	Annotations map[string]any `json:"annotations,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// Cause is a document's cause: the error's type and message.
type Cause struct {
	Exceptions []Exception `json:"exceptions"`
}

// Exception is one entry of a Cause.
type Exception struct {
	ID      string `json:"id"`
	Type    string `json:"type,omitempty"`
	Message string `json:"message,omitempty"`
}
