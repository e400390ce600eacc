//! Request parameters as Mastodon clients send them: in the query string, as a form
//! (`application/x-www-form-urlencoded` or `multipart/form-data`) or as JSON, all read into one
//! JSON object so a handler reads a field the same way whatever the client chose.
//!
//! Form keys in Rails' bracket notation become structure: `media_ids[]=1&media_ids[]=2` an
//! array, `fields_attributes[0][name]=x` nested objects. Booleans are read as JSON booleans,
//! `true`/`false` or `1`/`0`.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::Request;
use serde_json::{Map, Value};

use chirp_engine::Error as EngineError;

use crate::http::{self, ApiError, ApiResult};

/// A file of a multipart form.
pub struct File {
    /// Its form field.
    pub field: String,
    /// The type its part declares, if any.
    pub content_type: Option<String>,
    /// The bytes.
    pub bytes: Bytes,
}

/// The parameters of one request.
#[derive(Default)]
pub struct Params {
    values: Map<String, Value>,
    /// The files of a multipart form.
    pub files: Vec<File>,
}

/// How deep bracket keys may nest (`a[b][c]` is 3).
const MAX_DEPTH: usize = 4;
/// Most values one request may carry.
const MAX_VALUES: usize = 256;

impl Params {
    /// The query string's parameters.
    pub fn query(req: &Request<Incoming>) -> ApiResult<Params> {
        let mut p = Params::default();
        if let Some(q) = req.uri().query() {
            p.add_form(q.as_bytes())?;
        }
        Ok(p)
    }

    /// The query string's parameters and the body's (form, multipart or JSON), the body's
    /// winning where both name a key. `limit` bounds the body.
    pub async fn request(req: Request<Incoming>, limit: usize) -> ApiResult<Params> {
        let (parts, body) = req.into_parts();
        let raw = http::read_body(&parts.headers, body, limit).await?;
        Params::parse(&parts, raw).await
    }

    /// [`Self::request`] of a request whose body was read.
    pub async fn parse(parts: &hyper::http::request::Parts, raw: Bytes) -> ApiResult<Params> {
        let mut p = Params::default();
        if let Some(q) = parts.uri.query() {
            p.add_form(q.as_bytes())?;
        }
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if raw.is_empty() {
            return Ok(p);
        }
        match essence.as_str() {
            "application/json" => match serde_json::from_slice::<Value>(&raw) {
                Ok(Value::Object(map)) => p.values.extend(map),
                Ok(_) => {
                    return Err(ApiError::MalformedJson(
                        "the body must be a JSON object".into(),
                    ))
                }
                Err(e) => return Err(ApiError::MalformedJson(e.to_string())),
            },
            "multipart/form-data" => p.add_multipart(&content_type, raw).await?,
            // Clients that send a form often leave the type out.
            _ => p.add_form(&raw)?,
        }
        Ok(p)
    }

    fn add_form(&mut self, raw: &[u8]) -> ApiResult<()> {
        for (key, value) in form_urlencoded::parse(raw) {
            self.insert(&key, Value::String(value.into_owned()))?;
        }
        Ok(())
    }

    async fn add_multipart(&mut self, content_type: &str, raw: Bytes) -> ApiResult<()> {
        let malformed = |e: multer::Error| ApiError::MalformedBody(format!("multipart body: {e}"));
        let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(raw) });
        let mut form = multer::Multipart::new(stream, boundary);
        while let Some(field) = form.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_owned();
            if field.file_name().is_some() {
                let content_type = field.content_type().map(|m| m.essence_str().to_owned());
                let bytes = field.bytes().await.map_err(malformed)?;
                self.files.push(File {
                    field: name,
                    content_type,
                    bytes,
                });
            } else {
                let text = field.text().await.map_err(malformed)?;
                self.insert(&name, Value::String(text))?;
            }
        }
        Ok(())
    }

    /// Inserts one form value under its bracketed key.
    fn insert(&mut self, key: &str, value: Value) -> ApiResult<()> {
        let count: usize = self.values.values().map(count_values).sum();
        if count >= MAX_VALUES {
            return Err(ApiError::MalformedBody(format!(
                "more than {MAX_VALUES} parameters"
            )));
        }
        let (head, path) = split_key(key);
        if path.len() >= MAX_DEPTH {
            return Err(ApiError::MalformedBody(format!(
                "parameter `{key}` nests deeper than {MAX_DEPTH}"
            )));
        }
        insert_at(&mut self.values, head, &path, value);
        Ok(())
    }

    /// A value, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|v| !v.is_null())
    }

    /// A value as text (numbers and booleans as they print); a list or object is refused.
    pub fn str(&self, name: &'static str) -> ApiResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(EngineError::invalid(name, "must be a string").into()),
        }
    }

    /// A value that must be present, as text.
    pub fn required(&self, name: &'static str) -> ApiResult<String> {
        self.str(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| EngineError::invalid(name, "is required").into())
    }

    /// The parameters of a nested object, if `outer` is one.
    fn inner(&self, outer: &str) -> Option<Params> {
        match self.get(outer) {
            Some(Value::Object(inner)) => Some(Params {
                values: inner.clone(),
                files: Vec::new(),
            }),
            _ => None,
        }
    }

    /// A value of a nested object (`source[language]=…` or `{"source":{"language":…}}`),
    /// as text.
    pub fn nested_str(&self, outer: &str, name: &'static str) -> ApiResult<Option<String>> {
        self.inner(outer).map_or(Ok(None), |p| p.str(name))
    }

    /// A boolean of a nested object.
    pub fn nested_bool(&self, outer: &str, name: &'static str) -> ApiResult<Option<bool>> {
        self.inner(outer).map_or(Ok(None), |p| p.bool(name))
    }

    /// A boolean: `true`/`false`, `1`/`0` (as text or JSON); absent is None.
    pub fn bool(&self, name: &'static str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" => Ok(Some(true)),
                "false" | "0" | "off" | "" => Ok(Some(false)),
                _ => Err(EngineError::invalid(name, "must be true or false").into()),
            },
            Some(_) => Err(EngineError::invalid(name, "must be true or false").into()),
        }
    }

    /// An unsigned integer.
    pub fn u64(&self, name: &'static str) -> ApiResult<Option<u64>> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| EngineError::invalid(name, "must be a non-negative integer").into()),
        }
    }

    /// A list of text values: `name[]=a&name[]=b`, a JSON array, an object keyed by index
    /// (`name[0]=a`) or one value. `array_name` is the name without brackets.
    pub fn list(&self, name: &'static str) -> ApiResult<Vec<String>> {
        let text = |v: &Value| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ApiError::from(EngineError::invalid(
                name,
                "must be a list of strings",
            ))),
        };
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(text).collect(),
            Some(Value::Object(by_index)) => by_index.values().map(text).collect(),
            Some(one) => Ok(vec![text(one)?]),
        }
    }

    /// A list of objects: a JSON array of objects or an object keyed by index, in index
    /// order (`fields_attributes[0][name]=…`).
    pub fn objects(&self, name: &'static str) -> ApiResult<Vec<Map<String, Value>>> {
        let bad = || ApiError::from(EngineError::invalid(name, "must be a list of objects"));
        let items: Vec<&Value> = match self.get(name) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(Value::Object(by_index)) => {
                let mut keyed: Vec<(u64, &Value)> = Vec::new();
                for (k, v) in by_index {
                    keyed.push((k.parse().map_err(|_| bad())?, v));
                }
                keyed.sort_by_key(|(k, _)| *k);
                keyed.into_iter().map(|(_, v)| v).collect()
            }
            Some(_) => return Err(bad()),
        };
        items
            .into_iter()
            .map(|v| v.as_object().cloned().ok_or_else(bad))
            .collect()
    }

    /// The file of a multipart field.
    pub fn file(&self, field: &str) -> Option<&File> {
        self.files.iter().find(|f| f.field == field)
    }
}

fn count_values(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.iter().map(count_values).sum(),
        Value::Object(o) => o.values().map(count_values).sum(),
        _ => 1,
    }
}

/// `a[b][]` → (`a`, [`b`, ``]).
fn split_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    let (head, mut rest) = key.split_at(open);
    let mut path = Vec::new();
    while let Some(inner) = rest.strip_prefix('[') {
        match inner.find(']') {
            Some(close) => {
                path.push(&inner[..close]);
                rest = &inner[close + 1..];
            }
            None => return (key, Vec::new()),
        }
    }
    if !rest.is_empty() {
        return (key, Vec::new());
    }
    (head, path)
}

fn insert_at(map: &mut Map<String, Value>, head: &str, path: &[&str], value: Value) {
    match path.split_first() {
        None => {
            map.insert(head.to_owned(), value);
        }
        Some((&"", _)) => {
            // `a[]`: append (a later `a[]` after a plain `a` turns it into a list).
            let slot = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                let first = std::mem::take(slot);
                *slot = Value::Array(vec![first]);
            }
            if let Value::Array(items) = slot {
                items.push(value);
            }
        }
        Some((first, rest)) => {
            let slot = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_at(inner, first, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(raw: &str) -> Params {
        let mut p = Params::default();
        p.add_form(raw.as_bytes()).expect("parses");
        p
    }

    #[test]
    fn brackets_become_lists_and_objects() {
        let p = form("media_ids[]=1&media_ids[]=2&status=hi+there&fields_attributes[1][name]=b&fields_attributes[0][name]=a&fields_attributes[0][value]=x");
        assert_eq!(p.list("media_ids").expect("list"), vec!["1", "2"]);
        assert_eq!(p.str("status").expect("str"), Some("hi there".into()));
        let fields = p.objects("fields_attributes").expect("objects");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0]["name"], "a");
        assert_eq!(fields[0]["value"], "x");
        assert_eq!(fields[1]["name"], "b");
        assert!(p.list("missing").expect("empty").is_empty());
    }

    #[test]
    fn booleans_read_every_way_clients_write_them() {
        let p = form("a=1&b=0&c=true&d=false&e=yes");
        assert_eq!(p.bool("a").expect("a"), Some(true));
        assert_eq!(p.bool("b").expect("b"), Some(false));
        assert_eq!(p.bool("c").expect("c"), Some(true));
        assert_eq!(p.bool("d").expect("d"), Some(false));
        assert!(matches!(
            p.bool("e"),
            Err(ApiError::Engine(EngineError::Invalid { field: "e", .. }))
        ));
        assert_eq!(p.bool("f").expect("f"), None);
        let mut j = Params::default();
        j.values.insert("g".into(), Value::Bool(true));
        j.values.insert("h".into(), serde_json::json!(["1", 2]));
        assert_eq!(j.bool("g").expect("g"), Some(true));
        assert_eq!(j.list("h").expect("h"), vec!["1", "2"]);
    }

    #[test]
    fn odd_keys_stay_flat_and_depth_is_bounded() {
        let p = form("a[b=1&c]=2&d[x]y=3");
        assert_eq!(p.str("a[b").expect("a"), Some("1".into()));
        assert_eq!(p.str("c]").expect("c"), Some("2".into()));
        assert_eq!(p.str("d[x]y").expect("d"), Some("3".into()));
        let mut deep = Params::default();
        assert!(deep.add_form(b"a[b][c][d][e]=1").is_err());
        let many: Vec<String> = (0..300).map(|i| format!("k{i}=1")).collect();
        assert!(Params::default()
            .add_form(many.join("&").as_bytes())
            .is_err());
    }
}
