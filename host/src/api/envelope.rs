//! JSend envelopes and the API's error type.
//!
//! - success: `{"status":"success","data":...}`
//! - 4xx: `{"status":"fail","data":{"code":"snake_case","message":"...", ...}}`
//! - 5xx: `{"status":"error","message":"...","code":<http status>}`

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use serde_json::{Map, Value};

/// The response body type of every route.
pub type Body = Full<Bytes>;

/// A failed request: a 4xx `fail` or a 5xx `error`. Messages never carry
/// credentials.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status of the response: 4xx gives a `fail` envelope, 5xx an `error` one.
    pub status: StatusCode,
    /// `data.code` of a fail (snake_case); unused for 5xx.
    pub code: &'static str,
    /// Human-readable explanation, shown to the client (`data.message`, or `message` for 5xx).
    pub message: String,
    /// More keys of `data` (`field`, `hint`, `expected_region`, ...).
    pub extra: Map<String, Value>,
    /// Headers to add (`Allow`, `WWW-Authenticate`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl From<crate::gateway::GatewayError> for ApiError {
    fn from(e: crate::gateway::GatewayError) -> Self {
        Self {
            status: e.status,
            code: e.code,
            message: e.message,
            extra: e.extra,
            headers: Vec::new(),
        }
    }
}

impl ApiError {
    /// An error with no extra `data` keys and no extra headers.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds a key to `data`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Adds a response header (replacing one of the same name when the response is built).
    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// 400 about one field of the body.
    pub fn field(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with("field", field)
    }

    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 401 with code `unauthorized` (no `WWW-Authenticate` header unless added).
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// A 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 409 with `code` (e.g. a name or mount path already in use).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A 5xx; `message` is shown to the client.
    pub fn server(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "error", message)
    }

    /// A 500 whose details go to the log only (with the request id).
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{what}");
        Self::server(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error while {what}; see the server log for this request id"),
        )
    }

    /// The envelope.
    pub fn body(&self) -> Value {
        serde_json::to_value(self.envelope()).unwrap_or(Value::Null)
    }

    fn envelope(&self) -> Envelope<'_> {
        if self.status.is_server_error() {
            Envelope::Error {
                status: "error",
                message: &self.message,
                code: self.status.as_u16(),
            }
        } else {
            Envelope::Fail {
                status: "fail",
                data: FailData {
                    code: self.code,
                    message: &self.message,
                    extra: &self.extra,
                },
            }
        }
    }

    /// The HTTP response: the envelope as JSON, with the extra headers.
    pub fn into_response(self) -> Response<Body> {
        let mut resp = json_response(self.status, &self.envelope());
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

/// The three envelope shapes, keys in the documented order.
#[derive(Serialize)]
#[serde(untagged)]
enum Envelope<'a> {
    Fail {
        status: &'static str,
        data: FailData<'a>,
    },
    Error {
        status: &'static str,
        message: &'a str,
        code: u16,
    },
}

#[derive(Serialize)]
struct FailData<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct Success<T> {
    status: &'static str,
    data: T,
}

/// `{"status":"success","data":data}`
pub fn success<T: Serialize>(status: StatusCode, data: T) -> Response<Body> {
    json_response(
        status,
        &Success {
            status: "success",
            data,
        },
    )
}

#[derive(Serialize)]
struct PageOut<T> {
    data: Vec<T>,
    pagination: Pagination,
}

#[derive(Serialize)]
struct Pagination {
    total: u64,
    limit: u32,
    offset: u64,
    count: usize,
}

/// A paginated list: `data = {"data":[...],"pagination":{total,limit,offset,count}}`.
pub fn page<T: Serialize>(items: Vec<T>, total: u64, limit: u32, offset: u64) -> Response<Body> {
    let count = items.len();
    success(
        StatusCode::OK,
        PageOut {
            data: items,
            pagination: Pagination {
                total,
                limit,
                offset,
                count,
            },
        },
    )
}

/// `value` as a JSON response (newline-terminated, `Cache-Control: no-store`); a value that fails to
/// serialise becomes a 5xx-shaped error body, with `status` unchanged.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value)
        .unwrap_or_else(|_| b"{\"status\":\"error\",\"message\":\"serialization failed\",\"code\":500}".to_vec());
    bytes.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// RFC 3339 (UTC, seconds) for milliseconds since the Unix epoch.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_406_158_999), "2026-12-04T17:42:38Z");
    }

    #[test]
    fn envelopes() {
        use serde_json::json;
        let e = ApiError::field("missing_field", "config.bucket", "config.bucket is required");
        assert_eq!(
            e.body(),
            json!({"status":"fail","data":{"code":"missing_field","message":"config.bucket is required","field":"config.bucket"}})
        );
        let e = ApiError::server(StatusCode::BAD_GATEWAY, "x");
        assert_eq!(e.body(), json!({"status":"error","message":"x","code":502}));
    }
}
