//! The generic S3-compatible provider: the fallback when no other plugin
//! recognises the endpoint. The endpoint is required; `region` and
//! `use_path_style` are taken exactly as given (region default
//! `us-east-1`; addressing default virtual-hosted, except path style for IP
//! or `localhost` endpoints and for bucket names that are not DNS-safe).
//! Unknown stores often reject checksum headers, so none are sent.

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, Quirk, ResolveCase};

pub struct Generic;

fn quirks() -> Vec<Quirk> {
    vec![Quirk::NoChecksumHeaders]
}

impl byos3_plugin_sdk::Provider for Generic {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "s3".into(),
            name: "Generic S3-compatible".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Any S3-compatible store; endpoint required, region and path style exactly as given".into(),
            docs_url: None,
            default_region: Some("us-east-1".into()),
            endpoint_required: true,
            options: vec![],
            examples: table(),
        }
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        byos3_plugin_sdk::endpoint_required(
            c,
            "the generic S3 provider needs an endpoint URL (https://host[:port])",
            "us-east-1",
            false,
            quirks(),
        )
    }
}

byos3_plugin_sdk::export_provider!(Generic);

/// The resolve table.
pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "path style as given",
            config("b").endpoint("http://127.0.0.1:9000").path_style(true),
            "http://127.0.0.1:9000",
            "us-east-1",
            Path,
            quirks(),
        ),
        cases::ok(
            "region as given",
            config("b").endpoint("https://s3.example.com/").region("eu-1"),
            "https://s3.example.com",
            "eu-1",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "virtual-hosted by default",
            config("data").endpoint("https://s3.example.com"),
            "https://s3.example.com",
            "us-east-1",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "path style kept false",
            config("data").endpoint("https://s3.example.com").path_style(false),
            "https://s3.example.com",
            "us-east-1",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "IP endpoint gets path style",
            config("b").endpoint("http://10.0.0.5:7480"),
            "http://10.0.0.5:7480",
            "us-east-1",
            Path,
            quirks(),
        ),
        cases::ok(
            "dotted bucket gets path style",
            config("my.bucket").endpoint("https://s3.example.com"),
            "https://s3.example.com",
            "us-east-1",
            Path,
            quirks(),
        ),
        cases::ok(
            "base path kept",
            config("b").endpoint("https://gw.example.com/s3/").path_style(true),
            "https://gw.example.com/s3",
            "us-east-1",
            Path,
            quirks(),
        ),
        cases::fails("endpoint required", config("b"), "endpoint"),
        cases::fails(
            "endpoint must be a URL",
            config("b").endpoint("s3.example.com"),
            "endpoint",
        ),
        cases::fails(
            "virtual host on an IP",
            config("b").endpoint("http://127.0.0.1:9000").path_style(false),
            "use_path_style",
        ),
        cases::fails(
            "bad region",
            config("b").endpoint("https://s3.example.com").region("EU West"),
            "region",
        ),
        cases::fails(
            "unknown option",
            config("b").endpoint("https://s3.example.com").opt("acount_id", "x"),
            "options.acount_id",
        ),
        cases::fails("empty bucket", config("").endpoint("https://s3.example.com"), "bucket"),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Generic::resolve);
    }

    #[test]
    fn matches_nothing() {
        assert!(!super::Generic::matches("https://s3.example.com"));
    }
}
