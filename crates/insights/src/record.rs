//! The flat span record every analysis works on, and its span kind.

/// The kind of a span, as in OpenTelemetry (`Unspecified` is treated as `Internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// From the OTLP enum value; unknown values are `Unspecified`.
    pub fn from_otlp(kind: i32) -> SpanKind {
        match kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// The TraceQL intrinsic value (`kind = server`).
    pub fn traceql(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// Server and consumer spans receive work from another service.
    pub fn is_receiving(self) -> bool {
        matches!(self, SpanKind::Server | SpanKind::Consumer)
    }
}

/// One span, flattened for analysis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    /// `service.name` of the resource (`unknown_service` when absent).
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_nanos: u64,
    pub end_nanos: u64,
    /// Status code `ERROR`.
    pub error: bool,
    /// `k8s.pod.name`, else `service.instance.id`, else `host.name`.
    pub instance: Option<String>,
    /// `k8s.node.name`, else `host.name`.
    pub node: Option<String>,
    /// `k8s.namespace.name`.
    pub namespace: Option<String>,
    /// `service.version`.
    pub version: Option<String>,
    /// For client spans, the name the peer gets when no server span answers (see
    /// [`crate::extract`] for the rule); `None` for other kinds or when nothing names it.
    pub peer: Option<String>,
    /// `db.system.name`, else `db.system`.
    pub db_system: Option<String>,
    /// `messaging.destination.name` (else the older `messaging.destination`).
    pub destination: Option<String>,
    /// The attribute `peer` was taken from (`peer.service`, `server.address`, `url.full`, …),
    /// so evidence queries can name it.
    pub peer_key: Option<&'static str>,
}

impl SpanRecord {
    pub fn duration_nanos(&self) -> u64 {
        self.end_nanos.saturating_sub(self.start_nanos)
    }
}
