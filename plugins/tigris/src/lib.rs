//! Tigris: `https://t3.storage.dev` (and the older
//! `https://fly.storage.tigris.dev`), region `auto`, virtual-hosted
//! addressing (new buckets reject path style).

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, url, Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, ResolveCase,
};

pub struct Tigris;

const HOSTS: &[&str] = &["t3.storage.dev", "fly.storage.tigris.dev"];

impl byos3_plugin_sdk::Provider for Tigris {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "tigris".into(),
            name: "Tigris".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Tigris object storage: https://t3.storage.dev, region auto, virtual-hosted".into(),
            docs_url: Some("https://www.tigrisdata.com/docs/sdks/s3/".into()),
            default_region: Some("auto".into()),
            endpoint_required: false,
            options: vec![],
            examples: table(),
        }
    }

    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint).is_ok_and(|u| HOSTS.contains(&u.host.as_str()))
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, &[])?;
        let url = match url::endpoint_of(c)? {
            None => url::Url::parse("https://t3.storage.dev").expect("well-formed"),
            Some(u) if HOSTS.contains(&u.host.as_str()) && u.is_https() && u.port.is_none() && u.path.is_empty() => u,
            Some(u) => {
                return Err(config_error(
                    "endpoint",
                    format!("{} is not a Tigris endpoint (https://t3.storage.dev)", u.to_url()),
                ))
            }
        };
        match cfg::region(c) {
            None | Some("auto" | "us-east-1") => {}
            Some(r) => {
                return Err(config_error(
                    "region",
                    format!("Tigris signs with region \"auto\", not {r:?}"),
                ))
            }
        }
        if c.use_path_style == Some(true) {
            return Err(config_error(
                "use_path_style",
                "Tigris buckets reject path-style requests; leave use_path_style unset or false",
            ));
        }
        if !cfg::dns_safe(&c.bucket) {
            return Err(config_error(
                "bucket",
                format!(
                    "{:?} can not be virtual-hosted; Tigris needs a DNS-safe bucket name",
                    c.bucket
                ),
            ));
        }
        Ok(endpoint(url.to_url(), "auto", Addressing::VirtualHosted, vec![]))
    }
}

byos3_plugin_sdk::export_provider!(Tigris);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "defaults",
            config("data"),
            "https://t3.storage.dev",
            "auto",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "fly endpoint kept",
            config("data").endpoint("https://fly.storage.tigris.dev"),
            "https://fly.storage.tigris.dev",
            "auto",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "us-east-1 aliases auto",
            config("data").endpoint("https://t3.storage.dev").region("us-east-1"),
            "https://t3.storage.dev",
            "auto",
            VirtualHosted,
            vec![],
        ),
        cases::fails("path style refused", config("data").path_style(true), "use_path_style"),
        cases::fails(
            "other host",
            config("data").endpoint("https://s3.example.com"),
            "endpoint",
        ),
        cases::fails("wrong region", config("data").region("eu-west-1"), "region"),
        cases::fails("dotted bucket", config("my.data"), "bucket"),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Tigris::resolve);
    }
}
