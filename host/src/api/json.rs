//! Strict JSON request bodies: syntax errors with their position, duplicate
//! keys refused, unknown fields named with a did-you-mean, and every type or
//! presence error naming the field by its path (`config.bucket is required`).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::envelope::ApiError;

/// A JSON value whose objects had no duplicate keys.
struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses a request body into a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Obj, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = de::Deserialize::deserialize(&mut de)
        .and_then(|Strict(v)| de.end().map(|_| v))
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the request body is not valid JSON: {e}")))?;
    Obj::root(value)
}

/// Levenshtein distance (small strings only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known name closest to `name`, if close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (distance(&lower, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2) || k.starts_with(&lower) || lower.starts_with(k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The error for an unknown field `name` of the object at `path`.
pub fn unknown_field(path: &str, name: &str, known: &[&str]) -> ApiError {
    let shown: String = name.chars().take(64).collect();
    let full = if path.is_empty() {
        shown.clone()
    } else {
        format!("{path}.{shown}")
    };
    let mut msg = if path.is_empty() {
        format!("unknown field {shown:?}")
    } else {
        format!("unknown field {shown:?} in {path}")
    };
    match did_you_mean(name, known) {
        Some(k) => msg.push_str(&format!(" (did you mean {k:?}?)")),
        None => msg.push_str(&format!(" (expected one of: {})", known.join(", "))),
    }
    ApiError::field("unknown_field", &full, msg)
}

/// A JSON object being taken apart field by field.
pub struct Obj {
    path: String,
    map: Map<String, Value>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Obj {
    fn root(v: Value) -> Result<Self, ApiError> {
        match v {
            Value::Object(map) => Ok(Self {
                path: String::new(),
                map,
            }),
            other => Err(ApiError::bad_request(
                "invalid_json",
                format!("the request body must be a JSON object, not {}", type_name(&other)),
            )),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Refuses fields not in `known`, naming the closest known one.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(unknown_field(&self.path, k, known)),
            None => Ok(()),
        }
    }

    fn missing(&self, key: &str) -> ApiError {
        let p = self.path_of(key);
        ApiError::field("missing_field", &p, format!("{p} is required"))
    }

    fn wrong_type(&self, key: &str, want: &str, got: &Value) -> ApiError {
        let p = self.path_of(key);
        ApiError::field(
            "invalid_type",
            &p,
            format!("{p} must be {want}, not {}", type_name(got)),
        )
    }

    /// `Some(value)` unless absent or null.
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// Takes string field `key`: `None` if absent or null, `invalid_type` if not a string.
    pub fn opt_str(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", &other)),
        }
    }

    /// Takes string field `key`: `missing_field` if absent or null, `invalid_type` if not a string.
    pub fn req_str(&mut self, key: &str) -> Result<String, ApiError> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }

    /// A required secret string: moved, never copied, into a zeroizing box.
    pub fn req_secret(&mut self, key: &str) -> Result<Zeroizing<String>, ApiError> {
        match self.take(key) {
            None => Err(self.missing(key)),
            Some(Value::String(s)) => Ok(Zeroizing::new(s)),
            Some(other) => Err(self.wrong_type(key, "a string", &other)),
        }
    }

    /// Takes boolean field `key`: `None` if absent or null, `invalid_type` if not a boolean.
    pub fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(self.wrong_type(key, "a boolean (true or false)", &other)),
        }
    }

    /// Takes integer field `key`: `None` if absent or null, `invalid_type` unless a non-negative integer
    /// that fits a `u64`.
    pub fn opt_u64(&mut self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(other) => Err(self.wrong_type(key, "a non-negative integer", &other)),
        }
    }

    /// Takes object field `key` (its errors name it as `parent.key`): `None` if absent or null,
    /// `invalid_type` if not an object.
    pub fn opt_obj(&mut self, key: &str) -> Result<Option<Obj>, ApiError> {
        let path = self.path_of(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj { path, map })),
            Some(other) => Err(self.wrong_type(key, "an object", &other)),
        }
    }

    /// Takes object field `key`: `missing_field` if absent or null, `invalid_type` if not an object.
    pub fn req_obj(&mut self, key: &str) -> Result<Obj, ApiError> {
        self.opt_obj(key)?.ok_or_else(|| self.missing(key))
    }

    /// An array of strings.
    pub fn opt_str_list(&mut self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        self.opt_list(key, "an array of strings", "a string", |_, v| match v {
            Value::String(s) => Ok(s),
            other => Err(other),
        })
    }

    /// An array of objects.
    pub fn opt_obj_list(&mut self, key: &str) -> Result<Option<Vec<Obj>>, ApiError> {
        self.opt_list(key, "an array of objects", "an object", |path, v| match v {
            Value::Object(map) => Ok(Obj { path, map }),
            other => Err(other),
        })
    }

    /// An array whose items `item` converts, given each item's path; an
    /// item it hands back is of the wrong type (`each` says the right one).
    fn opt_list<T>(
        &mut self,
        key: &str,
        list: &str,
        each: &str,
        item: impl Fn(String, Value) -> Result<T, Value>,
    ) -> Result<Option<Vec<T>>, ApiError> {
        let path = self.path_of(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = format!("{path}[{i}]");
                    item(at.clone(), v).map_err(|other| {
                        let message = format!("{at} must be {each}, not {}", type_name(&other));
                        ApiError::field("invalid_type", &at, message)
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.wrong_type(key, list, &other)),
        }
    }

    /// An object of string values (`{"k":"v"}`), sorted by key.
    pub fn opt_string_map(&mut self, key: &str) -> Result<Option<Vec<(String, String)>>, ApiError> {
        let Some(obj) = self.opt_obj(key)? else { return Ok(None) };
        let mut out = Vec::with_capacity(obj.map.len());
        for (k, v) in obj.map {
            match v {
                Value::String(s) => out.push((k, s)),
                other => {
                    let p = format!("{}.{k}", obj.path);
                    return Err(ApiError::field(
                        "invalid_type",
                        &p,
                        format!("{p} must be a string, not {}", type_name(&other)),
                    ));
                }
            }
        }
        out.sort();
        Ok(Some(out))
    }

    /// The dotted path of `key` in this object (for validation errors).
    pub fn field_path(&self, key: &str) -> String {
        self.path_of(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<impl Sized, ApiError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => format!("{} {}", e.code, e.message),
        }
    }

    #[test]
    fn syntax_and_shape_errors() {
        assert!(msg(parse_object(b"{\"name\":")).starts_with("invalid_json the request body is not valid JSON: EOF"));
        assert_eq!(
            msg(parse_object(b"  ")),
            "invalid_json the request body is empty; send a JSON object"
        );
        assert_eq!(
            msg(parse_object(b"[1]")),
            "invalid_json the request body must be a JSON object, not an array"
        );
        assert!(msg(parse_object(b"{\"a\":1,\"a\":2}")).contains("duplicate field \"a\""));
        assert!(msg(parse_object(b"{} {}")).contains("trailing characters"));
    }

    #[test]
    fn list_items_of_the_wrong_type_name_their_index() {
        let mut o = parse_object(br#"{"allow":["a",7],"disks":[{"x":1},"y"],"deny":"z","keys":[]}"#).unwrap();
        assert_eq!(
            msg(o.opt_str_list("allow")),
            "invalid_type allow[1] must be a string, not a number"
        );
        assert_eq!(
            msg(o.opt_obj_list("disks")),
            "invalid_type disks[1] must be an object, not a string"
        );
        assert!(msg(o.opt_str_list("deny")).contains("deny must be an array of strings"));
        assert_eq!(o.opt_obj_list("keys").unwrap().map(|v| v.len()), Some(0));
        assert!(o.opt_str_list("absent").unwrap().is_none());
        let mut o = parse_object(br#"{"disks":[{"mount_path":"/m"}]}"#).unwrap();
        let mut d = o.opt_obj_list("disks").unwrap().unwrap().remove(0);
        assert_eq!(msg(d.req_str("disk_id")), "missing_field disks[0].disk_id is required");
    }

    #[test]
    fn field_errors_name_the_path() {
        let mut o = parse_object(br#"{"config":{"use_path_style":"yes"},"credential":{}}"#).unwrap();
        assert_eq!(
            msg(o.deny_unknown(&["name", "kind", "config", "credentials"])),
            "unknown_field unknown field \"credential\" (did you mean \"credentials\"?)"
        );
        let mut c = o.req_obj("config").unwrap();
        assert_eq!(msg(c.req_str("bucket")), "missing_field config.bucket is required");
        assert_eq!(
            msg(c.opt_bool("use_path_style")),
            "invalid_type config.use_path_style must be a boolean (true or false), not a string"
        );
        let mut o2 = parse_object(br#"{"config":{"bukcet":"x"}}"#).unwrap();
        assert_eq!(
            msg(o2.req_obj("config").unwrap().deny_unknown(&["bucket", "endpoint"])),
            "unknown_field unknown field \"bukcet\" in config (did you mean \"bucket\"?)"
        );
        assert_eq!(msg(o.req_obj("nothing")), "missing_field nothing is required");
    }

    #[test]
    fn did_you_mean_is_conservative() {
        assert_eq!(
            did_you_mean("credential", &["credentials", "config"]),
            Some("credentials")
        );
        assert_eq!(
            did_you_mean("usePathStyle", &["use_path_style", "bucket"]),
            Some("use_path_style")
        );
        assert_eq!(did_you_mean("regoin", &["region", "bucket"]), Some("region"));
        assert_eq!(did_you_mean("zzzzzz", &["region", "bucket"]), None);
    }
}
