//! Where a bucket lives and how to address it.
//!
//! The host knows no provider: everything provider-specific arrives here as
//! data (an [`Endpoint`] resolved by a provider plugin or given by hand).

use std::fmt;

use http::uri::{Scheme, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// How the bucket name is placed in a request URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Addressing {
    /// `https://host/bucket/key`
    Path,
    /// `https://bucket.host/key`
    VirtualHosted,
}

/// Behaviour of a store that differs from AWS S3, declared by its plugin.
///
/// The client sends no `x-amz-checksum-*` headers unless asked to, because
/// several stores reject them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quirks {
    /// Send `x-amz-sdk-checksum-algorithm` / `x-amz-checksum-*` headers.
    pub checksum_headers: bool,
    /// Every multipart part but the last must have the same size.
    pub uniform_part_size: bool,
    /// Only ListObjects (v1) is implemented by the store.
    pub list_objects_v1_only: bool,
    /// The most parts one multipart upload may have.
    pub max_parts: u32,
    /// The smallest part but the last, in bytes.
    pub min_part_size: u64,
    /// UploadPartCopy (server-side copy into a part) is supported.
    pub upload_part_copy: bool,
    /// CopyObject is supported (rename needs it).
    pub copy_object: bool,
    /// The largest object one CopyObject copies (AWS: 5 GiB); larger ones
    /// are copied in parts with UploadPartCopy. Not settable by plugins yet:
    /// contract v1 has no quirk for it.
    pub max_copy_object_size: u64,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            checksum_headers: false,
            uniform_part_size: false,
            list_objects_v1_only: false,
            max_parts: 10_000,
            min_part_size: 5 * 1024 * 1024,
            upload_part_copy: true,
            copy_object: true,
            max_copy_object_size: 5 * 1024 * 1024 * 1024,
        }
    }
}

/// A resolved S3 endpoint: base URL, signing region, addressing and quirks.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
    base_path: String,
    signing_region: String,
    addressing: Addressing,
    quirks: Quirks,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url())
            .field("signing_region", &self.signing_region)
            .field("addressing", &self.addressing)
            .field("quirks", &self.quirks)
            .finish()
    }
}

/// Why an endpoint URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// The URL does not parse, or has no scheme or host.
    #[error("endpoint {url:?} is not an absolute URL: {reason}")]
    Malformed {
        /// The URL as given.
        url: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// The scheme is neither `http` nor `https`.
    #[error("endpoint {url:?} must use http or https")]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// The URL has a query (`?`), fragment (`#`) or user info (`@`).
    #[error("endpoint {url:?} must not carry a query, fragment or user info")]
    Extra {
        /// The URL as given.
        url: String,
    },
    /// The signing region is empty or only whitespace.
    #[error("signing region must not be empty")]
    EmptyRegion,
    /// Virtual-hosted addressing needs a bucket name that is a DNS label; this one is not.
    #[error("bucket {bucket:?} cannot be addressed virtual-hosted style (not a DNS label); use path style")]
    NotDnsSafe {
        /// The refused bucket name.
        bucket: String,
    },
}

impl Endpoint {
    /// Parses `url` (`http(s)://host[:port][/base]`) into an endpoint.
    pub fn new(url: &str, signing_region: &str, addressing: Addressing) -> Result<Self, EndpointError> {
        let malformed = |reason: &str| EndpointError::Malformed {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.contains(['?', '#', '@']) {
            return Err(EndpointError::Extra { url: url.to_string() });
        }
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| malformed(&e.to_string()))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| malformed("no scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(EndpointError::Scheme { url: url.to_string() });
        }
        let authority = uri.authority().ok_or_else(|| malformed("no host"))?;
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return Err(malformed("no host"));
        }
        if signing_region.trim().is_empty() {
            return Err(EndpointError::EmptyRegion);
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            scheme,
            host,
            port: authority.port_u16(),
            base_path,
            signing_region: signing_region.to_string(),
            addressing,
            quirks: Quirks::default(),
        })
    }

    /// Replaces the quirks.
    pub fn with_quirks(mut self, quirks: Quirks) -> Self {
        self.quirks = quirks;
        self
    }

    /// The endpoint as a URL string, without the bucket.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(&self.host), self.base_path)
    }

    /// Whether requests use TLS (`https`).
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// Host name (or IP literal, brackets included for IPv6) of the endpoint.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port given in the URL; `None` means the scheme's default (80 or 443).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The region requests are signed for (SigV4); never empty.
    pub fn signing_region(&self) -> &str {
        &self.signing_region
    }

    /// Whether the bucket goes in the path or the host name of request URLs.
    pub fn addressing(&self) -> Addressing {
        self.addressing
    }

    /// How the store differs from AWS S3; [`Quirks::default`] unless set with [`Endpoint::with_quirks`].
    pub fn quirks(&self) -> &Quirks {
        &self.quirks
    }

    /// The host a request for `bucket` is sent to.
    pub fn request_host(&self, bucket: &str) -> String {
        match self.addressing {
            Addressing::Path => self.host.clone(),
            Addressing::VirtualHosted => format!("{bucket}.{}", self.host),
        }
    }

    /// Checks that `bucket` can be addressed with this endpoint.
    pub fn check_bucket(&self, bucket: &str) -> Result<(), EndpointError> {
        if self.addressing == Addressing::VirtualHosted && !is_dns_label(bucket) {
            return Err(EndpointError::NotDnsSafe {
                bucket: bucket.to_string(),
            });
        }
        Ok(())
    }

    /// Builds the already-encoded request URI for `bucket`, an optional
    /// object `key` and query pairs (raw, encoded here).
    pub fn request_uri(&self, bucket: &str, key: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut s = String::with_capacity(128);
        s.push_str(self.scheme.as_str());
        s.push_str("://");
        s.push_str(&self.authority(&self.request_host(bucket)));
        s.push_str(&self.base_path);
        if self.addressing == Addressing::Path {
            s.push('/');
            s.push_str(&encode_path_segment(bucket));
        }
        s.push('/');
        if let Some(key) = key {
            s.push_str(&encode_key(key));
        }
        for (i, (k, v)) in query.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(&encode_query(k));
            if !v.is_empty() || !is_flag_param(k) {
                s.push('=');
                s.push_str(&encode_query(v));
            }
        }
        s
    }

    fn authority(&self, host: &str) -> String {
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }
}

/// Sub-resources that S3 expects without `=`.
fn is_flag_param(k: &str) -> bool {
    matches!(k, "uploads" | "delete" | "location" | "versioning")
}

/// A bucket name usable as one DNS label under the endpoint host.
fn is_dns_label(bucket: &str) -> bool {
    !bucket.is_empty()
        && bucket.len() <= 63
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// RFC 3986 unreserved characters stay; everything else is encoded.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// Same, but `/` separates key segments and stays literal.
const KEY: &AsciiSet = &STRICT.remove(b'/');

/// Percent-encodes an object key for the request path (SigV4 canonical form).
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY).to_string()
}

fn encode_path_segment(s: &str) -> String {
    utf8_percent_encode(s, STRICT).to_string()
}

/// Percent-encodes a query name or value (SigV4 canonical form).
pub fn encode_query(s: &str) -> String {
    utf8_percent_encode(s, STRICT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_uri_encodes_key_but_not_slashes() {
        let ep = Endpoint::new("http://127.0.0.1:3900", "garage", Addressing::Path).unwrap();
        assert_eq!(
            ep.request_uri("b", Some("dir/a b+c%?#=&é.txt"), &[]),
            "http://127.0.0.1:3900/b/dir/a%20b%2Bc%25%3F%23%3D%26%C3%A9.txt"
        );
    }

    #[test]
    fn virtual_hosted_uri_puts_bucket_in_host() {
        let ep = Endpoint::new("https://s3.example.test/", "eu-1", Addressing::VirtualHosted).unwrap();
        assert_eq!(
            ep.request_uri("bkt", None, &[("list-type", "2"), ("prefix", "a/b c")]),
            "https://bkt.s3.example.test/?list-type=2&prefix=a%2Fb%20c"
        );
        assert_eq!(
            ep.request_uri("bkt", None, &[("uploads", "")]),
            "https://bkt.s3.example.test/?uploads"
        );
    }

    #[test]
    fn base_path_is_kept() {
        let ep = Endpoint::new("http://localhost:9000/s3/", "r", Addressing::Path).unwrap();
        assert_eq!(ep.request_uri("b", Some("k"), &[]), "http://localhost:9000/s3/b/k");
        assert_eq!(ep.url(), "http://localhost:9000/s3");
    }

    #[test]
    fn bad_endpoints_are_refused() {
        assert!(matches!(
            Endpoint::new("ftp://x", "r", Addressing::Path),
            Err(EndpointError::Scheme { .. })
        ));
        assert!(matches!(
            Endpoint::new("s3.example", "r", Addressing::Path),
            Err(EndpointError::Malformed { .. })
        ));
        assert!(matches!(
            Endpoint::new("http://u:p@x", "r", Addressing::Path),
            Err(EndpointError::Extra { .. })
        ));
        assert!(matches!(
            Endpoint::new("http://x", " ", Addressing::Path),
            Err(EndpointError::EmptyRegion)
        ));
    }

    #[test]
    fn dotted_bucket_is_not_virtual_hostable() {
        let ep = Endpoint::new("https://h", "r", Addressing::VirtualHosted).unwrap();
        assert!(ep.check_bucket("my.bucket").is_err());
        assert!(ep.check_bucket("my-bucket").is_ok());
    }
}
