//! `Transform`: per-sink edits of one event's JSON (drop, redact, hash, rename, set) on dotted
//! paths, applied to the copy a sink sends. The stored event and its chain are never touched.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value as Json};
use sha2::Sha256;

/// What `redact` writes in place of a value.
pub const REDACTED: &str = "[REDACTED]";

/// What starts every value written by `hash`.
pub const HASH_PREFIX: &str = "hmac-sha256:";

/// The member set on a changed event. Verifiers read it to know the content was altered.
pub const TRANSFORMED: &str = "transformed";

/// Top-level members no transform may target (as a path's first segment, or a rename's
/// destination). `offset`, `tenant_id` and `id` are the event's identity: the contract says a
/// transformed event keeps its offset, and a receiver deduplicates and cross-checks with the log
/// by `id`. `chain` must stay so that `auditrelay verify` can go on checking the events after a
/// transformed one. `transformed` is the transform's own mark.
pub const PROTECTED: &[&str] = &["offset", "tenant_id", "id", "chain", TRANSFORMED];

/// The operations, in the order they are applied.
const OPS: [&str; 5] = ["drop", "redact", "hash", "rename", "set"];

/// A transform definition that is not valid: the API's 400. `field` names the part at fault,
/// as `transform.<op>`, `transform.<op>[i]` or `transform.<op>.<key>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TransformError {
    pub field: String,
    pub message: String,
}

impl TransformError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        TransformError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A dotted path into nested objects, as written and split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    text: String,
    segments: Vec<String>,
}

impl Path {
    fn parse(text: &str, field: &str) -> Result<Path, TransformError> {
        if text.is_empty() {
            return Err(TransformError::new(field, "the path is empty"));
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(TransformError::new(
                field,
                format!("the path {text:?} has an empty segment"),
            ));
        }
        if PROTECTED.contains(&segments[0].as_str()) {
            return Err(TransformError::new(
                field,
                format!(
                    "{:?} cannot be changed by a transform (protected: {})",
                    segments[0],
                    PROTECTED.join(", ")
                ),
            ));
        }
        Ok(Path {
            text: text.to_owned(),
            segments,
        })
    }
}

/// A validated transform. Build it with [`Transform::parse`] (or serde, which goes through it).
/// Applying it is [`Transform::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "Json")]
pub struct Transform {
    drop: Vec<Path>,
    redact: Vec<Path>,
    hash: Vec<Path>,
    /// In the order written: a later rename sees the result of an earlier one.
    rename: Vec<(Path, Path)>,
    set: Vec<(Path, Json)>,
}

impl Transform {
    /// Reads the JSON definition, `{"drop": [paths], "redact": [paths], "hash": [paths],
    /// "rename": {from: to}, "set": {path: value}}`, every member optional.
    ///
    /// Refused, with the field at fault: anything but an object (`transform`), another member
    /// (`transform.<name>`), a member of the wrong shape (`transform.<op>`), an empty path or
    /// one with an empty segment or a protected first segment ([`PROTECTED`]:
    /// `transform.<op>[i]`, `transform.rename.<from>`, `transform.set.<path>`), a path listed
    /// twice across `drop`, `redact` and `hash` (the second would act on the first's result,
    /// e.g. hash `"[REDACTED]"`), and a rename onto itself.
    pub fn parse(definition: &Json) -> Result<Transform, TransformError> {
        let Json::Object(members) = definition else {
            return Err(TransformError::new("transform", "must be a JSON object"));
        };
        if let Some(unknown) = members.keys().find(|k| !OPS.contains(&k.as_str())) {
            return Err(TransformError::new(
                format!("transform.{unknown}"),
                format!("unknown operation (known: {})", OPS.join(", ")),
            ));
        }
        let mut transform = Transform::default();
        // Where each drop/redact/hash path was first listed.
        let mut seen: HashMap<String, String> = HashMap::new();
        for op in ["drop", "redact", "hash"] {
            let Some(list) = members.get(op) else { continue };
            let Json::Array(items) = list else {
                return Err(TransformError::new(
                    format!("transform.{op}"),
                    "must be an array of paths",
                ));
            };
            let mut paths = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let field = format!("transform.{op}[{i}]");
                let Json::String(text) = item else {
                    return Err(TransformError::new(field, "must be a string (a dotted path)"));
                };
                let path = Path::parse(text, &field)?;
                if let Some(first) = seen.get(text) {
                    return Err(TransformError::new(
                        field,
                        format!("the path {text:?} is already in {first}"),
                    ));
                }
                seen.insert(text.clone(), format!("transform.{op}[{i}]"));
                paths.push(path);
            }
            match op {
                "drop" => transform.drop = paths,
                "redact" => transform.redact = paths,
                _ => transform.hash = paths,
            }
        }
        if let Some(rename) = members.get("rename") {
            let Json::Object(pairs) = rename else {
                return Err(TransformError::new("transform.rename", "must be an object {from: to}"));
            };
            for (from, to) in pairs {
                let field = format!("transform.rename.{from}");
                let Json::String(to) = to else {
                    return Err(TransformError::new(
                        field,
                        "the new name must be a string (a dotted path)",
                    ));
                };
                let (from_path, to_path) = (Path::parse(from, &field)?, Path::parse(to, &field)?);
                if from_path == to_path {
                    return Err(TransformError::new(field, "renames a path onto itself"));
                }
                transform.rename.push((from_path, to_path));
            }
        }
        if let Some(set) = members.get("set") {
            let Json::Object(pairs) = set else {
                return Err(TransformError::new("transform.set", "must be an object {path: value}"));
            };
            for (path, value) in pairs {
                transform
                    .set
                    .push((Path::parse(path, &format!("transform.set.{path}"))?, value.clone()));
            }
        }
        Ok(transform)
    }

    /// Whether the transform has no operation at all (applying it never changes anything).
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
            && self.redact.is_empty()
            && self.hash.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
    }

    /// Applies the operations to `event` (the JSON rendering of one stored event) in this order:
    /// drop, redact, hash, rename, set, each over its paths as written; each sees the result of
    /// the ones before (a value renamed is found at its new path only by `set`). Returns whether
    /// anything changed; if so, sets `"transformed": true` on the event.
    ///
    /// Paths go through nested objects only (a segment never indexes an array). A path that
    /// does not exist is a no-op for drop, redact, hash and rename (as its source); rename and
    /// set create missing intermediate objects, and do nothing where an intermediate member
    /// exists but is not an object. Replacing a value by an equal one is not a change.
    ///
    /// `hash_key` is the sink's `hash_key` secret as bytes (its UTF-8 text as stored, not
    /// decoded: see [`generate_hash_key`]).
    pub fn apply(&self, event: &mut Json, hash_key: &[u8]) -> bool {
        let Json::Object(root) = event else {
            return false;
        };
        let mut changed = false;
        for path in &self.drop {
            changed |= remove(root, &path.segments).is_some();
        }
        for path in &self.redact {
            if let Some(value) = get_mut(root, &path.segments) {
                if value.as_str() != Some(REDACTED) {
                    *value = Json::String(REDACTED.to_owned());
                    changed = true;
                }
            }
        }
        for path in &self.hash {
            if let Some(value) = get_mut(root, &path.segments) {
                *value = Json::String(hash_value(hash_key, value));
                changed = true;
            }
        }
        for (from, to) in &self.rename {
            // Decided before anything moves, so a rename that cannot be done leaves the event as
            // it was (member order included). Moving `a` into `a.b` is possible: `a` is gone
            // by the time `a.b` is made.
            if get_mut(root, &from.segments).is_none()
                || !(to.segments.starts_with(&from.segments) || can_put(root, &to.segments))
            {
                continue;
            }
            if let Some(value) = remove(root, &from.segments) {
                changed = true;
                // `can_put` said yes, so this cannot hand the value back.
                let _ = put(root, &to.segments, value);
            }
        }
        for (path, value) in &self.set {
            changed |= put(root, &path.segments, value.clone()).unwrap_or(false);
        }
        if changed {
            root.insert(TRANSFORMED.to_owned(), Json::Bool(true));
        }
        changed
    }
}

impl TryFrom<Json> for Transform {
    type Error = TransformError;

    fn try_from(definition: Json) -> Result<Self, Self::Error> {
        Transform::parse(&definition)
    }
}

/// Writes the definition back in its JSON form (the operations it has, in application order),
/// so a sink definition reads back as it was given.
impl Serialize for Transform {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let texts = |paths: &[Path]| paths.iter().map(|p| p.text.clone()).collect::<Vec<_>>();
        let mut map = serializer.serialize_map(None)?;
        for (op, paths) in [("drop", &self.drop), ("redact", &self.redact), ("hash", &self.hash)] {
            if !paths.is_empty() {
                map.serialize_entry(op, &texts(paths))?;
            }
        }
        if !self.rename.is_empty() {
            let pairs: Map<String, Json> = self
                .rename
                .iter()
                .map(|(from, to)| (from.text.clone(), Json::String(to.text.clone())))
                .collect();
            map.serialize_entry("rename", &pairs)?;
        }
        if !self.set.is_empty() {
            let pairs: Map<String, Json> = self.set.iter().map(|(p, v)| (p.text.clone(), v.clone())).collect();
            map.serialize_entry("set", &pairs)?;
        }
        map.end()
    }
}

/// `"hmac-sha256:" + hex(HMAC-SHA256(key, RFC 8785 canonical JSON of value))`. Canonical JSON
/// makes the same value hash the same whatever its member order or number spelling; a string is
/// hashed with its quotes (`"usr_123"`), so a string and a number with the same digits differ.
pub fn hash_value(key: &[u8], value: &Json) -> String {
    let Ok(canonical) = serde_jcs::to_vec(value) else {
        // Cannot happen for a parsed `Value` (no NaN or infinity); if it ever does, send the
        // redaction mark rather than the value in clear.
        return REDACTED.to_owned();
    };
    // HMAC accepts keys of any length; `new_from_slice` only fails for fixed-size-key MACs.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return REDACTED.to_owned();
    };
    mac.update(&canonical);
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    out.push_str(&hex::encode(mac.finalize().into_bytes()));
    out
}

/// A new `hash_key` secret: 32 bytes from the operating system's random source, as 64 lowercase
/// hex digits. HMAC uses the text's bytes as the key (it is not hex-decoded), so an operator can
/// check a hash with `printf '%s' '"usr_123"' | openssl dgst -sha256 -hmac "$hash_key"`.
pub fn generate_hash_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn get_mut<'a>(root: &'a mut Map<String, Json>, segments: &[String]) -> Option<&'a mut Json> {
    let (last, parents) = segments.split_last()?;
    let mut map = root;
    for segment in parents {
        map = map.get_mut(segment)?.as_object_mut()?;
    }
    map.get_mut(last)
}

fn remove(root: &mut Map<String, Json>, segments: &[String]) -> Option<Json> {
    let (last, parents) = segments.split_last()?;
    let mut map = root;
    for segment in parents {
        map = map.get_mut(segment)?.as_object_mut()?;
    }
    // `shift_remove` keeps the other members in their order, as the json format delivers them.
    map.shift_remove(last)
}

/// Whether [`put`] would succeed: no intermediate member exists that is not an object.
fn can_put(root: &Map<String, Json>, segments: &[String]) -> bool {
    let Some((_, parents)) = segments.split_last() else {
        return false;
    };
    let mut map = root;
    for segment in parents {
        match map.get(segment) {
            None => return true,
            Some(Json::Object(inner)) => map = inner,
            Some(_) => return false,
        }
    }
    true
}

/// Writes `value` at `segments`, creating missing intermediate objects. `Ok(changed)`, or the
/// value back when an intermediate member is not an object (nothing is created then: a missing
/// member is only ever followed by members this call creates).
fn put(root: &mut Map<String, Json>, segments: &[String], value: Json) -> Result<bool, Json> {
    let Some((last, parents)) = segments.split_last() else {
        return Err(value);
    };
    let mut map = root;
    for segment in parents {
        match map.entry(segment.clone()).or_insert_with(|| Json::Object(Map::new())) {
            Json::Object(inner) => map = inner,
            _ => return Err(value),
        }
    }
    if map.get(last) == Some(&value) {
        return Ok(false);
    }
    map.insert(last.clone(), value);
    Ok(true)
}
