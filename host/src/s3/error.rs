//! Typed S3 errors: service errors parsed from XML bodies, and transport errors.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

/// An error answered by the S3 service (a non-2xx response, or a 200 whose
/// body is an `<Error>` document, as CompleteMultipartUpload may return).
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status code of the response (500 for an `<Error>` embedded in a 200).
    pub status: u16,
    /// The S3 error code (`NoSuchKey`, `AccessDenied`, ...); derived from the
    /// status when the response had no body (HEAD).
    pub code: String,
    /// The service's `<Message>`; empty when the response had none.
    pub message: String,
    /// The service's request id (`<RequestId>` or `x-amz-request-id`), for the provider's support.
    pub request_id: Option<String>,
    /// The region the bucket lives in, when the service said so
    /// (`x-amz-bucket-region` header or `<Region>` element).
    pub region: Option<String>,
    /// The endpoint the service asked us to use (`<Endpoint>` on a 301).
    pub endpoint: Option<String>,
}

impl fmt::Debug for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(r) = &self.region {
            write!(f, " (bucket region: {r})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ErrorDoc {
    code: String,
    message: String,
    request_id: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
}

impl std::error::Error for ServiceError {}

impl ServiceError {
    /// Builds the error from a response's status, headers and (possibly empty) body.
    pub fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let doc: ErrorDoc = std::str::from_utf8(body)
            .ok()
            .filter(|s| s.contains("<Error"))
            .and_then(|s| quick_xml::de::from_str(s).ok())
            .unwrap_or_default();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let code = if doc.code.is_empty() {
            code_for_status(status).to_string()
        } else {
            doc.code
        };
        Self {
            status: status.as_u16(),
            code,
            message: doc.message,
            request_id: doc.request_id.or_else(|| header("x-amz-request-id")),
            region: doc
                .region
                .filter(|r| !r.is_empty())
                .or_else(|| header("x-amz-bucket-region")),
            endpoint: doc.endpoint,
        }
    }

    /// Parses a 200 response body that is really an `<Error>` document.
    pub(crate) fn from_embedded(body: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?;
        let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        let after_decl = match trimmed.strip_prefix("<?xml") {
            Some(rest) => rest.split_once("?>").map(|(_, r)| r.trim_start())?,
            None => trimmed,
        };
        if !after_decl.starts_with("<Error>") {
            return None;
        }
        Some(Self::from_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            body,
        ))
    }

    /// The object or bucket does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == 404 || matches!(self.code.as_str(), "NoSuchKey" | "NoSuchBucket" | "NotFound")
    }

    /// The bucket itself does not exist (code `NoSuchBucket`), as opposed to a missing key.
    pub fn is_no_such_bucket(&self) -> bool {
        self.code == "NoSuchBucket"
    }

    /// Credentials were refused (bad key id, bad secret, or not allowed).
    pub fn is_auth(&self) -> bool {
        self.status == 403
            || matches!(
                self.code.as_str(),
                "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken"
            )
    }

    /// The request went to the wrong region.
    pub fn is_wrong_region(&self) -> bool {
        matches!(
            self.code.as_str(),
            "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "IncorrectEndpoint"
                | "IllegalLocationConstraintException"
        ) || (self.status == 301)
    }

    /// A `Range` beyond the end of the object.
    pub fn is_invalid_range(&self) -> bool {
        self.status == 416 || self.code == "InvalidRange"
    }

    /// A condition (`If-Match`, `If-None-Match`) did not hold: the object changed or already exists.
    pub fn is_precondition_failed(&self) -> bool {
        self.status == 412 || self.code == "PreconditionFailed"
    }

    /// The service asked us to back off or failed on its side.
    pub fn is_retryable(&self) -> bool {
        self.status >= 500
            || self.status == 429
            || matches!(
                self.code.as_str(),
                "SlowDown"
                    | "RequestTimeout"
                    | "RequestTimeTooSkewed"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "Throttling"
            )
    }
}

fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        301 => "PermanentRedirect",
        400 => "BadRequest",
        403 => "AccessDenied",
        404 => "NotFound",
        409 => "Conflict",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        429 => "SlowDown",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Unknown",
    }
}

/// Everything an S3 call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The service answered with an error (after any retries).
    #[error("{operation} failed: {source}")]
    Service {
        /// The S3 operation ([`Operation::name`](super::Operation::name)).
        operation: &'static str,
        /// What the service said (boxed: it is by far the largest variant,
        /// and every `Result` of the client carries its size).
        #[source]
        source: Box<ServiceError>,
    },
    /// No connection could be made (DNS, refused, TLS handshake, or an address the policy forbids).
    #[error("{operation}: could not connect to {host}: {reason}")]
    Connect {
        /// The S3 operation.
        operation: &'static str,
        /// Host name the request was for.
        host: String,
        /// The underlying error chain.
        reason: String,
    },
    /// No response headers within the request timeout, or a pause between body chunks longer than the
    /// read timeout.
    #[error("{operation}: no response from {host} within {timeout:?}")]
    Timeout {
        /// The S3 operation.
        operation: &'static str,
        /// Host name the request was for.
        host: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection failed after it was made (reset, closed mid-body, HTTP protocol error).
    #[error("{operation}: connection to {host} failed: {reason}")]
    Transport {
        /// The S3 operation.
        operation: &'static str,
        /// Host name the request was for.
        host: String,
        /// The underlying error chain.
        reason: String,
    },
    /// A success response the client cannot use (bad XML, a missing ETag or upload id, ...).
    #[error("{operation}: could not read the response: {reason}")]
    InvalidResponse {
        /// The S3 operation.
        operation: &'static str,
        /// What is wrong with the response.
        reason: String,
    },
    /// SigV4 signing (or presigning) failed.
    #[error("{operation}: could not sign the request: {reason}")]
    Signing {
        /// The S3 operation.
        operation: &'static str,
        /// The signer's error.
        reason: String,
    },
    /// The client refused to send the request: bad arguments (empty range, too many keys, a
    /// host-owned header, an invalid header value, ...). Nothing was sent.
    #[error("{operation}: invalid request: {reason}")]
    InvalidRequest {
        /// The S3 operation.
        operation: &'static str,
        /// What is wrong with the request.
        reason: String,
    },
    /// A response body was longer than the caller's limit; reading stopped there.
    #[error("{operation}: response body larger than the {limit} byte limit")]
    BodyTooLarge {
        /// The S3 operation.
        operation: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request body failed while it was being sent.
    #[error("{operation}: the request body failed: {reason}")]
    Body {
        /// The S3 operation.
        operation: &'static str,
        /// The body's error.
        reason: String,
    },
}

impl S3Error {
    /// The service error, if the service answered.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            S3Error::Service { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }

    /// The service said the object or bucket does not exist ([`ServiceError::is_not_found`]).
    pub fn is_not_found(&self) -> bool {
        self.service().is_some_and(ServiceError::is_not_found)
    }

    /// The service refused the credentials ([`ServiceError::is_auth`]).
    pub fn is_auth(&self) -> bool {
        self.service().is_some_and(ServiceError::is_auth)
    }

    /// The service refused the range as beyond the object's end ([`ServiceError::is_invalid_range`]).
    pub fn is_invalid_range(&self) -> bool {
        self.service().is_some_and(ServiceError::is_invalid_range)
    }

    /// A condition did not hold ([`ServiceError::is_precondition_failed`]).
    pub fn is_precondition_failed(&self) -> bool {
        self.service().is_some_and(ServiceError::is_precondition_failed)
    }

    /// The endpoint could not be reached at all (DNS, connect, TLS, timeout).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, S3Error::Connect { .. } | S3Error::Timeout { .. })
    }

    /// The errno a filesystem should report for this error.
    pub fn errno(&self) -> i32 {
        match self {
            S3Error::Service { source, .. } if source.is_not_found() => libc::ENOENT,
            S3Error::Service { source, .. } if source.is_auth() => libc::EACCES,
            S3Error::Service { source, .. } if source.is_invalid_range() => libc::EINVAL,
            S3Error::Timeout { .. } => libc::ETIMEDOUT,
            _ => libc::EIO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_document_and_region_hint() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region><RequestId>R1</RequestId></Error>"#;
        let e = ServiceError::from_response(StatusCode::BAD_REQUEST, &HeaderMap::new(), body);
        assert_eq!(e.code, "AuthorizationHeaderMalformed");
        assert_eq!(e.region.as_deref(), Some("eu-west-1"));
        assert_eq!(e.request_id.as_deref(), Some("R1"));
        assert!(e.is_wrong_region());
    }

    #[test]
    fn head_without_body_is_classified_by_status_and_header() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-bucket-region", "ap-south-1".parse().unwrap());
        let e = ServiceError::from_response(StatusCode::MOVED_PERMANENTLY, &h, b"");
        assert_eq!(e.code, "PermanentRedirect");
        assert_eq!(e.region.as_deref(), Some("ap-south-1"));
        let e = ServiceError::from_response(StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
        assert!(e.is_not_found());
    }

    #[test]
    fn embedded_error_in_200_is_detected() {
        let body = b"<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code><Message>x</Message></Error>";
        assert_eq!(ServiceError::from_embedded(body).unwrap().code, "InternalError");
        assert!(ServiceError::from_embedded(b"<CompleteMultipartUploadResult/>").is_none());
    }
}
