//! Which endpoints a disk may point at (server-side request forgery).
//!
//! Refused by default: link-local addresses (169.254.0.0/16, fe80::/10,
//! where cloud metadata services live), the other well-known metadata
//! addresses, unspecified, multicast and broadcast addresses, and metadata
//! host names (`metadata.google.internal`, ...). Loopback and private
//! ranges are allowed (self-hosted MinIO lives there). The operator's
//! `deny` list narrows this and `allow` widens it; entries are CIDRs, IPs,
//! host names (`*.example.com` for subdomains) or the keywords `loopback`,
//! `private`, `link-local`, `metadata`, `any`.
//!
//! The check runs on the endpoint at validation (an IP literal skips the
//! resolver, so it is checked there; a name is resolved and every address
//! checked), and again by the S3 client on every new connection after DNS
//! resolution, so a name that rebinds later is still refused. The S3
//! client follows no redirects.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::s3::AddressPolicy;

/// Metadata host names refused by default (and their subdomains).
pub const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
];

/// Metadata addresses outside the link-local ranges.
const METADATA_ADDRS: &[&str] = &[
    "100.100.100.200/32", // Alibaba Cloud
    "168.63.129.16/32",   // Azure wire server
    "fd00:ec2::254/128",  // AWS IPv6 instance metadata
];

/// An address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a single-address range); IPv6 may be bracketed. `None` if
    /// not an address or the prefix is too long for its family.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self {
            addr: normalize(addr),
            prefix,
        })
    }

    /// Whether `ip` lies in the range (IPv4-mapped IPv6 addresses count as IPv4); never across families.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, normalize(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses are checked as IPv4.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().filter_map(|s| Cidr::parse(s)).collect()
}

fn keyword(k: &str) -> Option<(Vec<Cidr>, Vec<String>)> {
    let nets = match k {
        "loopback" => cidrs(&["127.0.0.0/8", "::1/128"]),
        "private" => cidrs(&[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
        ]),
        "link-local" => cidrs(&["169.254.0.0/16", "fe80::/10"]),
        "metadata" => {
            let mut n = cidrs(&["169.254.169.254/32", "169.254.170.2/32"]);
            n.extend(cidrs(METADATA_ADDRS));
            return Some((n, METADATA_HOSTS.iter().map(|h| h.to_string()).collect()));
        }
        "any" => cidrs(&["0.0.0.0/0", "::/0"]),
        _ => return None,
    };
    Some((nets, Vec::new()))
}

/// An operator list: ranges and host names.
#[derive(Clone, Debug, Default)]
struct Rules {
    nets: Vec<Cidr>,
    hosts: Vec<String>,
}

impl Rules {
    fn parse(entries: &[String], what: &str) -> Result<Self, String> {
        let mut r = Rules::default();
        for e in entries {
            let e = e.trim().to_ascii_lowercase();
            if let Some((nets, hosts)) = keyword(&e) {
                r.nets.extend(nets);
                r.hosts.extend(hosts);
            } else if let Some(c) = Cidr::parse(&e) {
                r.nets.push(c);
            } else if valid_host_pattern(&e) {
                r.hosts.push(e.trim_end_matches('.').to_string());
            } else {
                return Err(format!("endpoint policy {what}: {e:?} is not a CIDR, IP, host name or keyword (loopback, private, link-local, metadata, any)"));
            }
        }
        Ok(r)
    }

    fn matches_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| host_matches(h, host))
    }

    fn matches_addr(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

fn valid_host_pattern(h: &str) -> bool {
    let h = h.strip_prefix("*.").unwrap_or(h);
    !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `pattern` (a name, or `*.suffix`) matches `host` or, for plain names, its subdomains.
fn host_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.strip_prefix("*.").unwrap_or(pattern);
    host == p || host.ends_with(&format!(".{p}"))
}

/// The endpoint policy. Implements the S3 client's [`AddressPolicy`].
#[derive(Clone, Debug)]
pub struct EndpointPolicy {
    allow: Rules,
    deny: Rules,
    default_deny: Rules,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        Self::new(&[], &[]).expect("the default policy parses")
    }
}

impl EndpointPolicy {
    /// The default policy widened by `allow` and narrowed by `deny`
    /// (deny wins over allow).
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, String> {
        let mut default_deny = Rules {
            nets: cidrs(&[
                "169.254.0.0/16",
                "fe80::/10",
                "0.0.0.0/32",
                "::/128",
                "255.255.255.255/32",
                "224.0.0.0/4",
                "ff00::/8",
            ]),
            hosts: Vec::new(),
        };
        default_deny.nets.extend(cidrs(METADATA_ADDRS));
        default_deny.hosts.extend(METADATA_HOSTS.iter().map(|h| h.to_string()));
        Ok(Self {
            allow: Rules::parse(allow, "allow")?,
            deny: Rules::parse(deny, "deny")?,
            default_deny,
        })
    }

    /// Checks a host name (not its addresses).
    pub fn check_name(&self, host: &str) -> Result<(), String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.deny.matches_host(&host) {
            return Err(format!("host {host} is denied by the operator's endpoint policy"));
        }
        if self.default_deny.matches_host(&host) && !self.allow.matches_host(&host) {
            return Err(format!("host {host} is a cloud metadata service"));
        }
        Ok(())
    }

    /// Checks one address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let ip = normalize(ip);
        if self.deny.matches_addr(ip) {
            return Err(format!("address {ip} is denied by the operator's endpoint policy"));
        }
        if self.allow.matches_addr(ip) {
            return Ok(());
        }
        if self.default_deny.matches_addr(ip) {
            let why = if is_link_local(ip) {
                "link-local (cloud metadata lives there)"
            } else {
                "a metadata, unspecified or multicast address"
            };
            return Err(format!("address {ip} is {why}"));
        }
        Ok(())
    }

    /// Checks an endpoint host at validation time: the name, then the
    /// literal address or every address the name resolves to. A name that
    /// does not resolve passes here (the probe reports it unreachable).
    pub async fn check_endpoint_host(&self, host: &str, port: u16) -> Result<(), String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_ip(ip);
        }
        self.check_name(bare)?;
        if let Ok(addrs) = tokio::net::lookup_host((bare, port)).await {
            for a in addrs {
                self.check_ip(a.ip())
                    .map_err(|e| format!("{bare} resolves to {}: {e}", a.ip()))?;
            }
        }
        Ok(())
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

impl AddressPolicy for EndpointPolicy {
    fn check(&self, host: &str, addr: IpAddr) -> Result<(), String> {
        self.check_name(host)?;
        self.check_ip(addr)
    }
}

/// A per-request wrapper remembering the first refusal, so a probe that
/// failed because a connection was refused is reported as
/// `endpoint_not_allowed`, not as an unreachable endpoint.
#[derive(Debug)]
pub struct RecordingPolicy {
    inner: Arc<EndpointPolicy>,
    refused: Mutex<Option<String>>,
}

impl RecordingPolicy {
    /// Wraps `inner`, with nothing refused yet.
    pub fn new(inner: Arc<EndpointPolicy>) -> Self {
        Self {
            inner,
            refused: Mutex::new(None),
        }
    }

    /// Why the first refused connection was refused; `None` if none was.
    pub fn refused(&self) -> Option<String> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl AddressPolicy for RecordingPolicy {
    fn check(&self, host: &str, addr: IpAddr) -> Result<(), String> {
        let r = self.inner.check(host, addr);
        if let Err(e) = &r {
            self.refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| e.clone());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let p = EndpointPolicy::default();
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "0.0.0.0",
            "fd00:ec2::254",
            "224.0.0.1",
        ] {
            assert!(p.check_ip(ip(bad)).is_err(), "{bad}");
        }
        for good in ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.10", "52.95.1.1", "2600::1"] {
            assert!(p.check_ip(ip(good)).is_ok(), "{good}");
        }
        assert!(p.check_name("metadata.google.internal").is_err());
        assert!(p.check_name("METADATA.google.internal.").is_err());
        assert!(p.check_name("bucket.metadata.google.internal").is_err());
        assert!(p.check_name("s3.amazonaws.com").is_ok());
        assert!(p.check("metadata.google.internal", ip("10.0.0.1")).is_err());
    }

    #[test]
    fn operator_lists() {
        let p = EndpointPolicy::new(&["169.254.10.0/24".into()], &["private".into(), "*.evil.test".into()]).unwrap();
        assert!(p.check_ip(ip("169.254.10.5")).is_ok());
        assert!(p.check_ip(ip("169.254.169.254")).is_err());
        assert!(p.check_ip(ip("10.0.0.1")).is_err());
        assert!(p.check_ip(ip("127.0.0.1")).is_ok());
        assert!(p.check_name("a.evil.test").is_err());
        let p = EndpointPolicy::new(&["any".into()], &["loopback".into()]).unwrap();
        assert!(p.check_ip(ip("127.0.0.1")).is_err(), "deny wins");
        assert!(p.check_ip(ip("169.254.169.254")).is_ok());
        assert!(EndpointPolicy::new(&["not a thing!".into()], &[]).is_err());
    }

    #[tokio::test]
    async fn endpoint_hosts() {
        let p = EndpointPolicy::default();
        assert!(p.check_endpoint_host("169.254.169.254", 80).await.is_err());
        assert!(p.check_endpoint_host("[fe80::1]", 80).await.is_err());
        assert!(p.check_endpoint_host("127.0.0.1", 80).await.is_ok());
        assert!(p.check_endpoint_host("localhost", 80).await.is_ok());
        assert!(p.check_endpoint_host("metadata.google.internal", 80).await.is_err());
    }
}
