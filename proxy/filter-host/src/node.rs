//! The node this proxy runs as (`node.*` and `xds.node` properties): its id,
//! cluster and metadata, as Envoy's bootstrap `node` gives them, and the
//! node's protobuf encoding (`envoy.config.core.v3.Node`) that `xds.node`
//! answers with.

/// Node facts exposed as `node.*` properties.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
    /// `node.metadata.<key>` (string values).
    pub metadata: Vec<(String, String)>,
    /// `node.metadata.LABELS.<key>`: the workload's labels.
    pub labels: Vec<(String, String)>,
}

/// `user_agent_name` in the encoded node.
const USER_AGENT: &str = "wasp";

impl NodeInfo {
    /// The value of `node.metadata.<key>`.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `node.metadata.LABELS.<key>`.
    pub fn label_value(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The node as a serialized `envoy.config.core.v3.Node`: `id` (1),
    /// `cluster` (2), `metadata` (3, a `google.protobuf.Struct` of string
    /// values, with the labels as a nested `LABELS` struct),
    /// `user_agent_name` (6) and `user_agent_version` (7). Empty strings are
    /// left out, as protobuf does.
    pub fn to_protobuf(&self) -> Vec<u8> {
        let mut out = Vec::new();
        string_field(&mut out, 1, &self.id);
        string_field(&mut out, 2, &self.cluster);
        if !self.metadata.is_empty() || !self.labels.is_empty() {
            let mut fields = string_struct(&self.metadata);
            if !self.labels.is_empty() {
                // google.protobuf.Value { struct_value = 5 }
                let mut value_msg = Vec::new();
                bytes_field(&mut value_msg, 5, &string_struct(&self.labels));
                struct_entry(&mut fields, "LABELS", &value_msg);
            }
            bytes_field(&mut out, 3, &fields);
        }
        string_field(&mut out, 6, USER_AGENT);
        string_field(&mut out, 7, env!("CARGO_PKG_VERSION"));
        out
    }
}

/// The fields of a `google.protobuf.Struct` whose values are strings.
fn string_struct(pairs: &[(String, String)]) -> Vec<u8> {
    let mut fields = Vec::new();
    for (key, value) in pairs {
        // google.protobuf.Value { string_value = 3 }
        let mut value_msg = Vec::new();
        bytes_field(&mut value_msg, 3, value.as_bytes());
        struct_entry(&mut fields, key, &value_msg);
    }
    fields
}

/// One `map<string, Value>` entry `{ key = 1, value = 2 }` of a Struct.
fn struct_entry(fields: &mut Vec<u8>, key: &str, value_msg: &[u8]) {
    let mut entry = Vec::new();
    string_field(&mut entry, 1, key);
    bytes_field(&mut entry, 2, value_msg);
    bytes_field(fields, 1, &entry);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field (wire type 2), written even when empty.
fn bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    varint(out, (u64::from(number) << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A proto3 string field: left out when empty.
fn string_field(out: &mut Vec<u8>, number: u32, value: &str) {
    if !value.is_empty() {
        bytes_field(out, number, value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_encodes_as_an_envoy_node_message() {
        let node = NodeInfo {
            id: "sidecar~10.0.0.1".into(),
            cluster: "web".into(),
            metadata: vec![("ns".into(), "prod".into())],
            labels: Vec::new(),
        };
        let bytes = node.to_protobuf();
        let mut expected = vec![0x0a, 16];
        expected.extend_from_slice(b"sidecar~10.0.0.1");
        expected.extend_from_slice(&[0x12, 3]);
        expected.extend_from_slice(b"web");
        // metadata: Struct { fields: { "ns": Value { string_value: "prod" } } }
        expected.extend_from_slice(&[0x1a, 14, 0x0a, 12, 0x0a, 2]);
        expected.extend_from_slice(b"ns");
        expected.extend_from_slice(&[0x12, 6, 0x1a, 4]);
        expected.extend_from_slice(b"prod");
        expected.extend_from_slice(&[0x32, 4]);
        expected.extend_from_slice(b"wasp");
        assert_eq!(&bytes[..expected.len()], &expected[..]);
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(bytes[expected.len()], 0x3a);
        assert_eq!(usize::from(bytes[expected.len() + 1]), version.len());
        assert_eq!(&bytes[expected.len() + 2..], version.as_bytes());
    }

    #[test]
    fn labels_encode_as_a_nested_labels_struct() {
        let node = NodeInfo {
            labels: vec![("a".into(), "b".into())],
            ..NodeInfo::default()
        };
        // metadata: Struct { "LABELS": Value { struct_value: Struct { "a": "b" } } }
        let inner = [0x0a, 8, 0x0a, 1, b'a', 0x12, 3, 0x1a, 1, b'b'];
        let mut expected = vec![0x1a, 24, 0x0a, 22, 0x0a, 6];
        expected.extend_from_slice(b"LABELS");
        expected.extend_from_slice(&[0x12, 12, 0x2a, 10]);
        expected.extend_from_slice(&inner);
        assert_eq!(&node.to_protobuf()[..expected.len()], &expected[..]);
    }

    #[test]
    fn empty_node_has_only_the_user_agent() {
        let bytes = NodeInfo::default().to_protobuf();
        assert_eq!(&bytes[..6], &[0x32, 4, b'w', b'a', b's', b'p']);
    }

    #[test]
    fn long_fields_use_multi_byte_lengths() {
        let node = NodeInfo {
            id: "x".repeat(200),
            ..NodeInfo::default()
        };
        let bytes = node.to_protobuf();
        assert_eq!(&bytes[..3], &[0x0a, 0xc8, 0x01]);
    }
}
