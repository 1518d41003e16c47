//! The WAL payload the live store writes: a tenant and an OTLP batch.
//!
//! ```text
//! version: u8 (=1) | tenant_len: u16 LE | tenant: UTF-8 | ExportTraceServiceRequest (protobuf)
//! ```
//! The batch is the concatenation of the per-trace fragments' encodings, which protobuf defines
//! to be the message with all their `resource_spans`; each fragment is encoded once and its bytes
//! are shared by the WAL record and the live trace.

use andante_ingest::ExportTraceServiceRequest;
use andante_model::TenantId;
use prost::Message;

const VERSION: u8 = 1;

pub(crate) fn encode(tenant: &TenantId, fragments: &[bytes::Bytes]) -> Vec<u8> {
    let tenant_bytes = tenant.as_str().as_bytes();
    let body: usize = fragments.iter().map(|f| f.len()).sum();
    let mut out = Vec::with_capacity(3 + tenant_bytes.len() + body);
    out.push(VERSION);
    out.extend_from_slice(&(tenant_bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(tenant_bytes);
    for fragment in fragments {
        out.extend_from_slice(fragment);
    }
    out
}

pub(crate) fn decode(payload: &[u8]) -> Result<(TenantId, ExportTraceServiceRequest), String> {
    if payload.len() < 3 || payload[0] != VERSION {
        return Err("unknown wal record version".to_owned());
    }
    let tenant_len = u16::from_le_bytes([payload[1], payload[2]]) as usize;
    let tenant_end = 3 + tenant_len;
    let tenant_text = payload.get(3..tenant_end).ok_or("truncated tenant")?;
    let tenant = std::str::from_utf8(tenant_text).map_err(|e| e.to_string())?;
    let tenant = TenantId::new(tenant).map_err(|e| e.to_string())?;
    let request =
        ExportTraceServiceRequest::decode(&payload[tenant_end..]).map_err(|e| e.to_string())?;
    Ok((tenant, request))
}
