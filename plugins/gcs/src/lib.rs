//! Google Cloud Storage through its XML API's S3 interoperability (HMAC
//! keys): `https://storage.googleapis.com`, region `auto`. GCS has no
//! UploadPartCopy and does not take `x-amz-checksum-*` headers.

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, url, Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, Quirk, ResolveCase,
};

pub struct Gcs;

const HOST: &str = "storage.googleapis.com";

fn quirks() -> Vec<Quirk> {
    vec![Quirk::NoChecksumHeaders, Quirk::NoUploadPartCopy]
}

impl byos3_plugin_sdk::Provider for Gcs {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "gcs".into(),
            name: "Google Cloud Storage (XML interoperability)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Google Cloud Storage with HMAC keys: https://storage.googleapis.com, region auto".into(),
            docs_url: Some("https://cloud.google.com/storage/docs/interoperability".into()),
            default_region: Some("auto".into()),
            endpoint_required: false,
            options: vec![],
            examples: table(),
        }
    }

    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint).is_ok_and(|u| u.host == HOST)
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, &[])?;
        if let Some(u) = url::endpoint_of(c)? {
            if u.host != HOST || !u.is_https() || !u.path.is_empty() {
                return Err(config_error(
                    "endpoint",
                    format!("{} is not the GCS XML endpoint (https://{HOST})", u.to_url()),
                ));
            }
        }
        // GCS ignores the signing region; "auto" is what its docs use. A
        // bucket location given as region is accepted and used as is.
        let region = cfg::region_or(c, "auto")?;
        let url = url::Url::parse(&format!("https://{HOST}")).expect("well-formed");
        let addressing = cfg::addressing(c, &url, false)?;
        Ok(endpoint(url.to_url(), region, addressing, quirks()))
    }
}

byos3_plugin_sdk::export_provider!(Gcs);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "defaults",
            config("data"),
            "https://storage.googleapis.com",
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "endpoint given",
            config("data").endpoint("https://storage.googleapis.com/"),
            "https://storage.googleapis.com",
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "dotted bucket: path style",
            config("example.com-data"),
            "https://storage.googleapis.com",
            "auto",
            Path,
            quirks(),
        ),
        cases::ok(
            "location as region",
            config("data").region("europe-west1"),
            "https://storage.googleapis.com",
            "europe-west1",
            VirtualHosted,
            quirks(),
        ),
        cases::fails(
            "JSON API host",
            config("data").endpoint("https://www.googleapis.com"),
            "endpoint",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Gcs::resolve);
    }
}
