//! Reading a disk configuration: trimmed values, flags, bucket names.

use crate::{config_error, ConfigError, DiskConfig};

/// Options every plugin accepts: the host uses them.
pub const HOST_OPTIONS: &[&str] = &["sub_path"];

/// The trimmed, non-empty value of option `name`.
pub fn option<'a>(cfg: &'a DiskConfig, name: &str) -> Option<&'a str> {
    cfg.options
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A boolean option (`true/false`, `1/0`, `yes/no`, `on/off`); absent is false.
pub fn flag(cfg: &DiskConfig, name: &str) -> Result<bool, ConfigError> {
    match option(cfg, name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(v) => Err(config_error(
            &format!("options.{name}"),
            format!("{v:?} is not true or false"),
        )),
    }
}

/// Refuses options the plugin does not know (a typo should not be ignored).
pub fn only_options(cfg: &DiskConfig, known: &[&str]) -> Result<(), ConfigError> {
    for (k, _) in &cfg.options {
        if !known.contains(&k.as_str()) && !HOST_OPTIONS.contains(&k.as_str()) {
            let list = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            return Err(config_error(
                &format!("options.{k}"),
                format!("unknown option {k:?}; this provider knows: {list}"),
            ));
        }
    }
    Ok(())
}

/// The trimmed, non-empty region the user gave.
pub fn region(cfg: &DiskConfig) -> Option<&str> {
    cfg.region.as_deref().map(str::trim).filter(|r| !r.is_empty())
}

/// The region: the configured one, else the one the endpoint names
/// (`None` when neither gives one). A configured region the endpoint
/// contradicts is refused, and whichever is found must be a region name.
pub fn region_agreeing(cfg: &DiskConfig, from_endpoint: Option<String>) -> Result<Option<String>, ConfigError> {
    let region = match (region(cfg), from_endpoint) {
        (Some(r), Some(e)) if r != e => {
            return Err(config_error(
                "region",
                format!("region {r:?} disagrees with the endpoint's region {e:?}"),
            ))
        }
        (Some(r), _) => Some(r.to_string()),
        (None, e) => e,
    };
    if let Some(r) = &region {
        check_region_name(r)?;
    }
    Ok(region)
}

/// A bucket name any S3 store accepts in a path: non-empty, at most 255
/// bytes, no `/`, no whitespace or control characters.
pub fn check_bucket(bucket: &str) -> Result<(), ConfigError> {
    if bucket.is_empty() {
        return Err(config_error("bucket", "the bucket name is empty"));
    }
    if bucket.len() > 255 || bucket.chars().any(|c| c == '/' || c.is_whitespace() || c.is_control()) {
        return Err(config_error(
            "bucket",
            format!("{bucket:?} is not a bucket name (no '/', spaces, at most 255 bytes)"),
        ));
    }
    Ok(())
}

/// Usable as one DNS label in `bucket.host` over https: lower-case letters,
/// digits and hyphens (a dot would break the TLS wildcard certificate).
pub fn dns_safe(bucket: &str) -> bool {
    !bucket.is_empty()
        && bucket.len() <= 63
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// A region name: lower-case letters, digits and hyphens.
pub fn check_region_name(region: &str) -> Result<(), ConfigError> {
    if region.is_empty()
        || region.len() > 64
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(config_error(
            "region",
            format!("{region:?} is not a region name (lower-case letters, digits, '-')"),
        ));
    }
    Ok(())
}

/// Addressing for `bucket` at `url`: the user's `use_path_style` if given,
/// else path style when `default_path`, when the endpoint is an IP address
/// or `localhost`, or when the bucket is not a DNS-safe label. Refuses
/// virtual-hosted addressing that can not work.
pub fn addressing(
    cfg: &DiskConfig,
    url: &crate::url::Url,
    default_path: bool,
) -> Result<crate::Addressing, ConfigError> {
    let forced = !dns_safe(&cfg.bucket) || url.is_ip_or_localhost();
    let path = cfg.use_path_style.unwrap_or(default_path || forced);
    if path {
        return Ok(crate::Addressing::Path);
    }
    if url.is_ip_or_localhost() {
        return Err(config_error(
            "use_path_style",
            format!(
                "virtual-hosted addressing needs a host name, but the endpoint is {}; use path style",
                url.host
            ),
        ));
    }
    if !dns_safe(&cfg.bucket) {
        return Err(config_error(
            "use_path_style",
            format!(
                "bucket {:?} is not a DNS-safe name (lower-case letters, digits, '-'), so it needs path style",
                cfg.bucket
            ),
        ));
    }
    Ok(crate::Addressing::VirtualHosted)
}

/// The region: the user's, else `default`; checked for shape.
pub fn region_or(cfg: &DiskConfig, default: &str) -> Result<String, ConfigError> {
    let r = region(cfg).unwrap_or(default);
    check_region_name(r)?;
    Ok(r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::{config, ConfigExt};

    #[test]
    fn the_region_comes_from_the_config_or_the_endpoint_and_they_must_agree() {
        let from = |r: &str| Some(r.to_string());
        assert_eq!(region_agreeing(&config("b"), None).unwrap(), None);
        assert_eq!(region_agreeing(&config("b"), from("eu-1")).unwrap(), from("eu-1"));
        let set = config("b").region(" eu-1 ");
        assert_eq!(region_agreeing(&set, None).unwrap(), from("eu-1"));
        assert_eq!(region_agreeing(&set, from("eu-1")).unwrap(), from("eu-1"));
        let err = region_agreeing(&set, from("us-2")).unwrap_err();
        assert_eq!(err.field, "region");
        assert!(err.message.contains("disagrees"), "{}", err.message);
        let bad = region_agreeing(&config("b").region("EU_1"), None).unwrap_err();
        assert_eq!(bad.field, "region");
    }
}
