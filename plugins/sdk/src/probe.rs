//! The standard bucket probe and its classification.
//!
//! HeadBucket first; when its answer (which has no body) is not enough to
//! say what is wrong, or to check listing, `ListObjectsV2 max-keys=1` under
//! the disk's prefix. The S3 error code decides; where stores answer with a
//! generic code (Garage says `AccessDenied` for a wrong secret and for an
//! unknown key id) the message decides.

use crate::{
    DiskConfig, Endpoint, Method, ProbeCode, ProbeReport, Quirk, RequestError, S3Request, S3Response, UnreachableKind,
};

/// Where probe requests go: the host import, or a fake in unit tests.
pub trait Bucket {
    fn call(&mut self, req: S3Request) -> Result<S3Response, RequestError>;
}

/// The host's `bucket` import.
pub struct HostBucket;

impl Bucket for HostBucket {
    fn call(&mut self, req: S3Request) -> Result<S3Response, RequestError> {
        crate::bindings::byos3::provider::bucket::call(&req)
    }
}

/// A report.
pub fn report(
    code: ProbeCode,
    message: impl Into<String>,
    hint: Option<String>,
    region: Option<String>,
) -> ProbeReport {
    ProbeReport {
        code,
        message: message.into(),
        hint,
        region,
    }
}

/// HeadBucket, then a one-key listing under `prefix`.
pub fn standard(cfg: &DiskConfig, ep: &Endpoint, prefix: &str, bucket: &mut dyn Bucket) -> ProbeReport {
    let head = S3Request {
        method: Method::Head,
        key: None,
        query: Vec::new(),
        headers: Vec::new(),
    };
    let resp = match bucket.call(head) {
        Ok(r) => r,
        Err(e) => return unreachable_report(ep, e),
    };
    // HEAD has no body: a 2xx goes on to listing, a 404 is clear, anything
    // else is explained by the listing's error document.
    if resp.status == 404 {
        return classify(cfg, ep, &resp);
    }
    if resp.status == 301 && header(&resp, "x-amz-bucket-region").is_some() {
        return classify(cfg, ep, &resp);
    }
    let v1 = ep.quirks.iter().any(|q| matches!(q, Quirk::ListObjectsV1Only));
    let mut query = vec![
        ("max-keys".to_string(), "1".to_string()),
        ("prefix".to_string(), prefix.to_string()),
    ];
    if !v1 {
        query.insert(0, ("list-type".to_string(), "2".to_string()));
    }
    let list = S3Request {
        method: Method::Get,
        key: None,
        query,
        headers: Vec::new(),
    };
    let resp = match bucket.call(list) {
        Ok(r) => r,
        Err(e) => return unreachable_report(ep, e),
    };
    if (200..300).contains(&resp.status) && !body_text(&resp).contains("<Error>") {
        let where_ = if prefix.is_empty() {
            String::new()
        } else {
            format!(" under {prefix:?}")
        };
        return report(
            ProbeCode::Ok,
            format!(
                "bucket {:?} at {} is reachable and listable{where_}",
                cfg.bucket, ep.url
            ),
            None,
            None,
        );
    }
    classify(cfg, ep, &resp)
}

fn unreachable_report(ep: &Endpoint, e: RequestError) -> ProbeReport {
    match e {
        RequestError::Unreachable(info) => {
            let (what, hint) = match info.kind {
                UnreachableKind::Dns => ("the host name does not resolve (DNS)", "check the endpoint's host name"),
                UnreachableKind::Connect => (
                    "no connection could be made (nothing listening, or the network refused)",
                    "check the endpoint's host and port, and that the server is running",
                ),
                UnreachableKind::Tls => (
                    "the TLS handshake failed",
                    "check http:// versus https:// and the server's certificate",
                ),
                UnreachableKind::Timeout => (
                    "the server did not answer in time",
                    "check the endpoint and the network path to it",
                ),
            };
            report(
                ProbeCode::EndpointUnreachable,
                format!("cannot reach {}: {what}: {}", ep.url, info.message),
                Some(hint.to_string()),
                None,
            )
        }
        RequestError::Other(m) => report(
            ProbeCode::Other,
            format!("the request to {} failed: {m}", ep.url),
            None,
            None,
        ),
    }
}

/// The value of header `name` (lower case).
pub fn header<'a>(resp: &'a S3Response, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn body_text(resp: &S3Response) -> &str {
    std::str::from_utf8(&resp.body).unwrap_or("")
}

/// The text of the first `<tag>…</tag>` in an XML document.
pub fn xml_tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim())
}

/// Decodes the XML character references S3 puts in error messages
/// (`&apos;`, `&quot;`, `&#39;`, ...); an unknown entity is kept as written.
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The parts of an S3 error answer a classification looks at.
pub struct ErrorAnswer<'a> {
    pub status: u16,
    pub code: &'a str,
    /// The message, XML entities decoded.
    pub message: String,
    /// `<Region>` or `x-amz-bucket-region`.
    pub region: Option<&'a str>,
}

impl<'a> ErrorAnswer<'a> {
    pub fn of(resp: &'a S3Response) -> Self {
        let body = body_text(resp);
        let region = xml_tag(body, "Region")
            .filter(|r| !r.is_empty())
            .or_else(|| header(resp, "x-amz-bucket-region"));
        Self {
            status: resp.status,
            code: xml_tag(body, "Code").unwrap_or(""),
            message: xml_unescape(xml_tag(body, "Message").unwrap_or("")),
            region,
        }
    }
}

/// Classifies an error answer into a stable code with a message and hint.
pub fn classify(cfg: &DiskConfig, ep: &Endpoint, resp: &S3Response) -> ProbeReport {
    let e = ErrorAnswer::of(resp);
    let bucket = &cfg.bucket;
    let detail = match (e.code.is_empty(), e.message.is_empty()) {
        (true, _) => format!("HTTP {}", e.status),
        (false, true) => format!("HTTP {} {}", e.status, e.code),
        (false, false) => format!("HTTP {} {}: {}", e.status, e.code, e.message),
    };
    let msg_lower = e.message.to_ascii_lowercase();
    let code_or_status = if e.code.is_empty() {
        status_code_name(e.status)
    } else {
        e.code
    };
    match code_or_status {
        "NoSuchBucket" | "NotFound" => report(
            ProbeCode::BucketNotFound,
            format!("bucket {bucket:?} does not exist at {} ({detail})", ep.url),
            Some("check the bucket name, and that the endpoint and region are the bucket's".into()),
            None,
        ),
        "InvalidAccessKeyId" => invalid_key(&detail),
        "SignatureDoesNotMatch" => signature(&detail),
        "AuthorizationHeaderMalformed"
        | "PermanentRedirect"
        | "IncorrectEndpoint"
        | "IllegalLocationConstraintException"
        | "Redirect" => wrong_region(ep, e.region, &detail),
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" | "Forbidden" => {
            // Some stores (Garage) answer AccessDenied for every credential
            // problem; their message says which.
            if msg_lower.contains("signature") {
                signature(&detail)
            } else if msg_lower.contains("no such key")
                || msg_lower.contains("access key")
                || msg_lower.contains("unknown key")
            {
                invalid_key(&detail)
            } else {
                report(
                    ProbeCode::AccessDenied,
                    format!("the credentials are valid but may not use bucket {bucket:?} ({detail})"),
                    Some("grant the key s3:ListBucket (and object read/write) on the bucket".into()),
                    None,
                )
            }
        }
        "NotImplemented" | "MethodNotAllowed" | "InvalidRequest" if e.message.to_ascii_lowercase().contains("path") => {
            report(
                ProbeCode::Unsupported,
                format!("the store refused the request's addressing style ({detail})"),
                Some("try the other addressing style (use_path_style)".into()),
                None,
            )
        }
        "NotImplemented" => report(
            ProbeCode::Unsupported,
            format!("the store does not implement a request byos3 needs ({detail})"),
            None,
            None,
        ),
        _ if e.status == 301 || e.status == 307 => wrong_region(ep, e.region, &detail),
        _ => report(
            ProbeCode::Other,
            format!("unexpected answer from {} ({detail})", ep.url),
            None,
            e.region.map(str::to_string),
        ),
    }
}

fn status_code_name(status: u16) -> &'static str {
    match status {
        301 => "PermanentRedirect",
        403 => "AccessDenied",
        404 => "NotFound",
        _ => "",
    }
}

fn invalid_key(detail: &str) -> ProbeReport {
    report(
        ProbeCode::InvalidAccessKey,
        format!("the access key id is not known to the store ({detail})"),
        Some("check the access key id (and that it belongs to this store and account)".into()),
        None,
    )
}

fn signature(detail: &str) -> ProbeReport {
    report(
        ProbeCode::SignatureMismatch,
        format!("the secret key does not match the access key id ({detail})"),
        Some("check the secret key for a typo, a missing character or stray spaces".into()),
        None,
    )
}

fn wrong_region(ep: &Endpoint, region: Option<&str>, detail: &str) -> ProbeReport {
    let (message, hint) = match region {
        Some(r) => (
            format!("the bucket is in region {r:?}, not {:?} ({detail})", ep.signing_region),
            Some(format!("set region to {r:?}")),
        ),
        None => (
            format!(
                "the bucket is not in region {:?} or not at this endpoint ({detail})",
                ep.signing_region
            ),
            Some("check the region and the endpoint".into()),
        ),
    };
    report(ProbeCode::WrongRegion, message, hint, region.map(str::to_string))
}

#[cfg(test)]
mod tests {

    #[test]
    fn error_messages_have_their_entities_decoded() {
        assert_eq!(
            xml_unescape(
                "the region &apos;us-east-1&apos; is wrong; expecting &quot;eu&quot; &amp; &#39;x&#x27; &bogus; a&b"
            ),
            "the region 'us-east-1' is wrong; expecting \"eu\" & 'x' &bogus; a&b"
        );
    }

    use super::*;
    use crate::{Addressing, UnreachableInfo};

    struct Fake(Vec<Result<S3Response, RequestError>>, Vec<S3Request>);

    impl Bucket for Fake {
        fn call(&mut self, req: S3Request) -> Result<S3Response, RequestError> {
            self.1.push(req);
            self.0.remove(0)
        }
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Result<S3Response, RequestError> {
        Ok(S3Response {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn err(code: &str, message: &str) -> String {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>")
    }

    fn probe(answers: Vec<Result<S3Response, RequestError>>) -> (ProbeReport, Vec<S3Request>) {
        let cfg = crate::cases::config("b");
        let ep = crate::endpoint("https://s3.example", "us-east-1", Addressing::Path, vec![]);
        let mut fake = Fake(answers, Vec::new());
        let r = standard(&cfg, &ep, "team/", &mut fake);
        (r, fake.1)
    }

    #[test]
    fn ok_heads_then_lists_under_prefix() {
        let (r, reqs) = probe(vec![
            resp(200, &[], ""),
            resp(200, &[], "<ListBucketResult></ListBucketResult>"),
        ]);
        assert_eq!(r.code, ProbeCode::Ok);
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].method, Method::Head);
        assert!(reqs[1].query.contains(&("prefix".into(), "team/".into())));
        assert!(reqs[1].query.contains(&("list-type".into(), "2".into())));
    }

    #[test]
    fn classifications() {
        let cases = [
            (vec![resp(404, &[], "")], ProbeCode::BucketNotFound),
            (
                vec![resp(403, &[], ""), resp(403, &[], &err("InvalidAccessKeyId", "x"))],
                ProbeCode::InvalidAccessKey,
            ),
            (
                vec![resp(403, &[], ""), resp(403, &[], &err("SignatureDoesNotMatch", "x"))],
                ProbeCode::SignatureMismatch,
            ),
            (
                vec![
                    resp(403, &[], ""),
                    resp(403, &[], &err("AccessDenied", "Forbidden: Invalid signature")),
                ],
                ProbeCode::SignatureMismatch,
            ),
            (
                vec![
                    resp(403, &[], ""),
                    resp(403, &[], &err("AccessDenied", "Forbidden: No such key: GK1")),
                ],
                ProbeCode::InvalidAccessKey,
            ),
            (
                vec![
                    resp(403, &[], ""),
                    resp(403, &[], &err("AccessDenied", "Access Denied")),
                ],
                ProbeCode::AccessDenied,
            ),
            (
                vec![
                    resp(200, &[], ""),
                    resp(403, &[], &err("AccessDenied", "Access Denied")),
                ],
                ProbeCode::AccessDenied,
            ),
            (
                vec![resp(301, &[("x-amz-bucket-region", "eu-west-1")], "")],
                ProbeCode::WrongRegion,
            ),
            (
                vec![
                    resp(400, &[], ""),
                    resp(
                        400,
                        &[],
                        "<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>",
                    ),
                ],
                ProbeCode::WrongRegion,
            ),
            (
                vec![resp(500, &[], ""), resp(500, &[], &err("InternalError", "x"))],
                ProbeCode::Other,
            ),
            (
                vec![Err(RequestError::Unreachable(UnreachableInfo {
                    kind: UnreachableKind::Connect,
                    message: "refused".into(),
                }))],
                ProbeCode::EndpointUnreachable,
            ),
        ];
        for (answers, want) in cases {
            let (r, _) = probe(answers);
            assert_eq!(r.code, want, "{r:?}");
        }
        let (r, _) = probe(vec![resp(301, &[("x-amz-bucket-region", "eu-west-1")], "")]);
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.hint.as_deref(), Some("set region to \"eu-west-1\""));
    }
}
