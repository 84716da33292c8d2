//! A provider plugin template: an S3-compatible store reached at
//! `https://s3.<region>.example.com`, region default `us-east-1`.
//!
//! `byos3 plugin new NAME` copies this crate to `plugins/NAME`. Edit the
//! rules in `resolve`, the table in `table()`, then:
//!
//! ```sh
//! cargo test --manifest-path plugins/Cargo.toml -p byos3-plugin-NAME   # the table, natively
//! scripts/build-plugins                                              # -> plugins/dist/NAME.wasm
//! byos3 plugin test plugins/dist/NAME.wasm --endpoint URL --bucket B  # live conformance
//! ```

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, url, Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, ResolveCase,
};

pub struct Plugin;

/// The provider's id: what users write as `provider` in a disk config.
const ID: &str = "template";
const DOMAIN: &str = ".example.com";

impl byos3_plugin_sdk::Provider for Plugin {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: ID.into(),
            name: "Example store (template)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "https://s3.<region>.example.com, region default us-east-1".into(),
            docs_url: None,
            default_region: Some("us-east-1".into()),
            endpoint_required: false,
            options: vec![],
            examples: table(),
        }
    }

    /// Auto-detection: claim only endpoints that are certainly yours.
    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint).is_ok_and(|u| u.host.ends_with(DOMAIN))
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, &[])?;
        if let Some(u) = url::endpoint_of(c)? {
            if !u.host.ends_with(DOMAIN) {
                return Err(config_error(
                    "endpoint",
                    format!("{} is not an endpoint of this store", u.to_url()),
                ));
            }
        }
        let region = cfg::region_or(c, "us-east-1")?;
        let url = url::Url::parse(&format!("https://s3.{region}{DOMAIN}")).expect("well-formed");
        let addressing = cfg::addressing(c, &url, false)?;
        // Declare the store's differences from AWS S3 here, e.g.
        // vec![Quirk::NoChecksumHeaders, Quirk::UniformPartSize].
        Ok(endpoint(url.to_url(), region, addressing, vec![]))
    }

    // `probe` defaults to the standard HeadBucket + ListObjectsV2 probe;
    // override it to add hints (see the r2 and aws plugins).
}

byos3_plugin_sdk::export_provider!(Plugin);

/// The resolve table: run by `cargo test`, by the host's tests and by
/// `byos3 plugin test`.
pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "defaults",
            config("data"),
            "https://s3.us-east-1.example.com",
            "us-east-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "region",
            config("data").region("eu-1"),
            "https://s3.eu-1.example.com",
            "eu-1",
            VirtualHosted,
            vec![],
        ),
        cases::fails(
            "foreign endpoint",
            config("data").endpoint("https://s3.other.test"),
            "endpoint",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Plugin::resolve);
    }
}
