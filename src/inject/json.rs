//! The positioned YAML tree as a JSON value, for the webhook: it patches pods
//! in JSON, and takes the sidecar container from the same YAML lines that
//! `inject` writes, so the two cannot drift apart.
//!
//! Plain scalars are typed by the YAML 1.2 core schema's narrowest rules:
//! `true`/`false`, null, and decimal integers; everything else is a string.
//! That is exact for the sidecar's own lines and for the test manifests,
//! which avoid YAML 1.1 forms (`yes`, `0644`) that the API server reads
//! differently; it is not a general YAML-to-JSON converter.

use serde_json::{Map, Value};

use super::tree::{parse_stream, Node, NodeKind};
use super::InjectError;

/// The first document of `text` as JSON (`null` for an empty stream).
pub fn yaml_to_json(text: &str) -> Result<Value, InjectError> {
    let docs = parse_stream(text)?;
    Ok(docs
        .into_iter()
        .next()
        .flatten()
        .map_or(Value::Null, |root| node_to_json(&root)))
}

pub(crate) fn node_to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Scalar { value, plain, .. } => {
            if !plain {
                Value::String(value.clone())
            } else if node.is_null() {
                Value::Null
            } else if value == "true" || value == "false" {
                Value::Bool(value == "true")
            } else if let Some(n) = decimal(value) {
                Value::from(n)
            } else {
                Value::String(value.clone())
            }
        }
        NodeKind::Seq(items) => Value::Array(items.iter().map(node_to_json).collect()),
        NodeKind::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(k.as_str().unwrap_or_default().to_owned(), node_to_json(v));
            }
            Value::Object(map)
        }
        // Anchors are not resolved: the sidecar and the fixtures have none.
        NodeKind::Alias => Value::Null,
    }
}

/// `0`, `42`, `-7`; not `042` (octal in YAML 1.1), `+1` or `1_000`.
fn decimal(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_typed_as_the_api_server_reads_them() {
        let v = yaml_to_json(
            "a: 9809\nb: \"9809\"\nc: true\nd: 'false'\ne: ~\nf: 0644\ng: -3\nh: [x, 1]\ni: {}\nj: yes\n",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "a": 9809, "b": "9809", "c": true, "d": "false", "e": null,
                "f": "0644", "g": -3, "h": ["x", 1], "i": {}, "j": "yes"
            })
        );
    }

    #[test]
    fn bad_yaml_is_an_error() {
        assert!(yaml_to_json("a: [1, 2\n").is_err());
        assert_eq!(yaml_to_json("").unwrap(), Value::Null);
    }
}
