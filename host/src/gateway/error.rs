//! The one error type of every gateway operation.

use std::fmt;

use http::StatusCode;
use serde_json::{Map, Value};

/// Why an operation was refused or failed. `code` is the API's: a JSend
/// `fail` code (`invalid_field`, `access_denied`, `mount_path_in_use`, ...)
/// or `error` for a server-side failure; messages never carry credentials.
#[derive(Clone, PartialEq)]
pub struct GatewayError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// More facts for the caller (`field`, `hint`, `expected_region`, ...).
    pub(crate) extra: Map<String, Value>,
}

impl GatewayError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Adds a fact (`field`, `hint`, ...).
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// A bad value of one input field (`field` names its JSON path).
    pub(crate) fn for_field(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with("field", field)
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A server-side failure whose `message` is shown to the caller.
    pub(crate) fn server(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "error", message)
    }

    /// A server-side failure whose details go to the log only.
    pub(crate) fn internal(what: &str, err: impl fmt::Display) -> Self {
        tracing::error!(error = %err, "{what}");
        Self::server(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error while {what}; see the server log for this request id"),
        )
    }

    /// The machine-readable reason.
    pub fn code(&self) -> &str {
        self.code
    }

    /// What happened and what to do, for a person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The input at fault (`config.bucket`, `mount_path`, ...), if one is.
    pub fn field(&self) -> Option<&str> {
        self.extra.get("field").and_then(Value::as_str)
    }

    /// The provider's advice (e.g. where the bucket lives), if any.
    pub fn hint(&self) -> Option<&str> {
        self.extra.get("hint").and_then(Value::as_str)
    }

    /// Every fact beyond code and message, as the API's `data` carries them.
    pub fn details(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// The HTTP status the API answers with for this error.
    pub fn http_status(&self) -> u16 {
        self.status.as_u16()
    }
}

impl fmt::Debug for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GatewayError({} {}: {})",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for GatewayError {}
