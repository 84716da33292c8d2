//! Backblaze B2 (S3-compatible API): `https://s3.<region>.backblazeb2.com`,
//! region required (e.g. `us-west-004`; given, or read from the endpoint).
//! B2 rejects the newer checksum headers.

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, url, Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, Quirk, ResolveCase,
};

pub struct B2;

fn quirks() -> Vec<Quirk> {
    vec![Quirk::NoChecksumHeaders]
}

impl byos3_plugin_sdk::Provider for B2 {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "b2".into(),
            name: "Backblaze B2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Backblaze B2: https://s3.<region>.backblazeb2.com, region required".into(),
            docs_url: Some("https://www.backblaze.com/docs/cloud-storage-s3-compatible-api".into()),
            default_region: None,
            endpoint_required: false,
            options: vec![],
            examples: table(),
        }
    }

    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint).is_ok_and(|u| u.host.ends_with(".backblazeb2.com"))
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, &[])?;
        let from_endpoint = match url::endpoint_of(c)? {
            None => None,
            Some(u) => match u
                .host
                .strip_prefix("s3.")
                .and_then(|h| h.strip_suffix(".backblazeb2.com"))
            {
                Some(r) if !r.contains('.') && u.is_https() => Some(r.to_string()),
                _ => {
                    return Err(config_error(
                        "endpoint",
                        format!(
                            "{} is not a B2 S3 endpoint (https://s3.<region>.backblazeb2.com)",
                            u.to_url()
                        ),
                    ))
                }
            },
        };
        let region = cfg::region_agreeing(c, from_endpoint)?.ok_or_else(|| {
            config_error(
                "region",
                "B2 needs the bucket's region, e.g. us-west-004 (shown on the bucket's page as its endpoint)",
            )
        })?;
        let url = url::Url::parse(&format!("https://s3.{region}.backblazeb2.com")).expect("well-formed");
        let addressing = cfg::addressing(c, &url, false)?;
        Ok(endpoint(url.to_url(), region, addressing, quirks()))
    }
}

byos3_plugin_sdk::export_provider!(B2);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "region only",
            config("data").region("us-west-004"),
            "https://s3.us-west-004.backblazeb2.com",
            "us-west-004",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "region from endpoint",
            config("data").endpoint("https://s3.eu-central-003.backblazeb2.com"),
            "https://s3.eu-central-003.backblazeb2.com",
            "eu-central-003",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "path style asked",
            config("data").region("us-east-005").path_style(true),
            "https://s3.us-east-005.backblazeb2.com",
            "us-east-005",
            Path,
            quirks(),
        ),
        cases::fails("region required", config("data"), "region"),
        cases::fails(
            "region disagrees",
            config("data")
                .endpoint("https://s3.us-west-004.backblazeb2.com")
                .region("us-west-002"),
            "region",
        ),
        cases::fails(
            "native API host",
            config("data").endpoint("https://api.backblazeb2.com"),
            "endpoint",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::B2::resolve);
    }
}
