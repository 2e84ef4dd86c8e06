//! The RFC 8785 (JCS) form of a stored body, prepared on the request's task so that the log's
//! single writer only splices the offset in before hashing (docs/integrity.md).

use serde_json::{Map, Value};

/// A body's JCS serialisation, split where the `"offset"` member sorts: JCS orders members by
/// their UTF-16 code units, so `offset` lands between the members before and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalBody {
    /// `{` and the members that sort before `offset`, comma-separated.
    before: String,
    /// The members that sort after `offset`, comma-separated, and `}`.
    after: String,
}

impl CanonicalBody {
    /// `None` when the body is not a JSON object (never the case for a rendered event) or holds
    /// an `offset` member of its own.
    pub fn new(body: &str) -> Option<CanonicalBody> {
        let members: Map<String, Value> = serde_json::from_str(body).ok()?;
        let mut sorted: Vec<(Vec<u16>, &String, &Value)> = members
            .iter()
            .map(|(k, v)| (k.encode_utf16().collect(), k, v))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let offset_key: Vec<u16> = "offset".encode_utf16().collect();
        let mut before = String::from("{");
        let mut after = String::new();
        for (utf16, key, value) in &sorted {
            let member = format!(
                "{}:{}",
                serde_jcs::to_string(key).ok()?,
                serde_jcs::to_string(value).ok()?
            );
            match utf16.cmp(&offset_key) {
                std::cmp::Ordering::Less => {
                    if before.len() > 1 {
                        before.push(',');
                    }
                    before.push_str(&member);
                }
                std::cmp::Ordering::Greater => {
                    if !after.is_empty() {
                        after.push(',');
                    }
                    after.push_str(&member);
                }
                std::cmp::Ordering::Equal => return None,
            }
        }
        after.push('}');
        Some(CanonicalBody { before, after })
    }

    /// The JCS bytes of the body with `"offset": offset` added.
    pub fn with_offset(&self, offset: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.before.len() + self.after.len() + 32);
        out.extend_from_slice(self.before.as_bytes());
        if self.before.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"\"offset\":");
        // As JCS prints every number: an IEEE double (exact for any offset below 2^53).
        let number = serde_jcs::to_string(&offset).unwrap_or_else(|_| offset.to_string());
        out.extend_from_slice(number.as_bytes());
        if self.after.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(self.after.as_bytes());
        out
    }
}
