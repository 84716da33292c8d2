//! A small URL parser for endpoint rules: `scheme://host[:port][/path]`.
//! (No `url` crate: plugins stay small and have nothing to parse but this.)

use crate::{config_error, ConfigError, DiskConfig};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-cased host name or IP literal (IPv6 with brackets).
    pub host: String,
    pub port: Option<u16>,
    /// Path without the trailing `/` ("" for none).
    pub path: String,
}

impl Url {
    /// Parses an endpoint URL. Query, fragment and user info are refused.
    pub fn parse(s: &str) -> Result<Url, String> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or("it must start with http:// or https://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme {scheme:?} is not http or https"));
        }
        if rest.contains(['?', '#', '@', ' ']) {
            return Err("it must not carry a query, fragment, user info or spaces".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p),
                None if tail.is_empty() => None,
                None => return Err("junk after the IPv6 address".into()),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err("it has no host".into());
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        {
            return Err(format!("host {host:?} has characters a host name can not have"));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("port {p:?} is not a number from 1 to 65535"))?,
            ),
            None => None,
        };
        if port == Some(0) {
            return Err("port 0 is not usable".into());
        }
        Ok(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
        })
    }

    /// `scheme://host[:port][path]`
    pub fn to_url(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{}{}{}", self.scheme, self.host, port, self.path)
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// An IP literal (v4 or bracketed v6) or `localhost`: no virtual hosts.
    pub fn is_ip_or_localhost(&self) -> bool {
        self.host.starts_with('[')
            || self.host == "localhost"
            || (self.host.split('.').count() == 4 && self.host.split('.').all(|p| p.parse::<u8>().is_ok()))
    }

    /// The host with `suffix` removed, if it ends with it.
    pub fn host_before<'a>(&'a self, suffix: &str) -> Option<&'a str> {
        self.host.strip_suffix(suffix)
    }
}

/// The disk's endpoint, parsed; errors name the `endpoint` field.
pub fn endpoint_of(cfg: &DiskConfig) -> Result<Option<Url>, ConfigError> {
    match cfg.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => Ok(None),
        Some(e) => Url::parse(e)
            .map(Some)
            .map_err(|why| config_error("endpoint", format!("{e:?} is not a usable endpoint URL: {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let u = Url::parse("HTTPS://S3.Example.com:8443/base/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("s3.example.com", Some(8443), "/base")
        );
        assert_eq!(u.to_url(), "https://s3.example.com:8443/base");
        assert!(Url::parse("http://[::1]:9000").unwrap().is_ip_or_localhost());
        assert!(Url::parse("http://127.0.0.1:9000").unwrap().is_ip_or_localhost());
        assert!(!Url::parse("http://minio.local:9000").unwrap().is_ip_or_localhost());
    }

    #[test]
    fn refuses_bad_urls() {
        for bad in [
            "s3.example.com",
            "ftp://x",
            "http://",
            "http://u@x",
            "http://x?y",
            "http://x:99999",
            "http://x:0",
            "http://a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
