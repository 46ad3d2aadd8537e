//! The argument of Envoy's `set_envoy_filter_state` foreign function, hand-serialized: the message is
//! three scalar fields, so a protobuf library would cost far more module size than these few lines.
//!
//! ```proto
//! message SetEnvoyFilterStateArguments { string path = 1; string value = 2; LifeSpan span = 3; }
//! enum LifeSpan { FilterChain = 0; DownstreamRequest = 1; DownstreamConnection = 2; }
//! ```

/// Foreign function that sets a filter-state object in the current stream's (here: connection's) info.
pub const FOREIGN_FUNCTION: &str = "set_envoy_filter_state";

/// Filter-state key tcp_proxy reads to pick its upstream cluster per connection.
pub const TCP_PROXY_CLUSTER: &str = "envoy.tcp_proxy.cluster";

/// `LifeSpan` values of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LifeSpan {
    FilterChain = 0,
    DownstreamRequest = 1,
    /// The whole downstream connection: what a per-connection cluster choice means.
    DownstreamConnection = 2,
}

/// Serializes `SetEnvoyFilterStateArguments { path, value, span }` in canonical protobuf encoding
/// (fields in order, proto3 default span omitted).
pub fn encode(path: &str, value: &str, span: LifeSpan) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + value.len() + 8);
    field(&mut out, 1, path.as_bytes());
    field(&mut out, 2, value.as_bytes());
    if span != LifeSpan::FilterChain {
        out.push(3 << 3); // field 3, wire type 0 (varint)
        out.push(span as u8);
    }
    out
}

/// A length-delimited field (wire type 2).
fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push(number << 3 | 2);
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_cluster_choice() {
        let bytes = encode(TCP_PROXY_CLUSTER, "tcp-echo-v2", LifeSpan::DownstreamConnection);
        let mut want = vec![0x0a, 23];
        want.extend_from_slice(b"envoy.tcp_proxy.cluster");
        want.extend_from_slice(&[0x12, 11]);
        want.extend_from_slice(b"tcp-echo-v2");
        want.extend_from_slice(&[0x18, 2]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn long_values_use_multibyte_lengths_and_default_span_is_omitted() {
        let value = "x".repeat(300);
        let bytes = encode("p", &value, LifeSpan::FilterChain);
        assert_eq!(&bytes[..3], &[0x0a, 1, b'p']);
        // 300 = 0b10_0101100 -> 0xac 0x02
        assert_eq!(&bytes[3..6], &[0x12, 0xac, 0x02]);
        assert_eq!(bytes.len(), 6 + 300);
    }
}
