//! DigitalOcean Spaces: `https://<region>.digitaloceanspaces.com`, region
//! required (`nyc3`, `fra1`, ...; given, or read from the endpoint). A
//! bucket endpoint pasted from the control panel
//! (`https://<bucket>.<region>.digitaloceanspaces.com`) is accepted.

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, url, Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, ResolveCase,
};

pub struct Spaces;

const DOMAIN: &str = ".digitaloceanspaces.com";

impl byos3_plugin_sdk::Provider for Spaces {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "digitalocean".into(),
            name: "DigitalOcean Spaces".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "DigitalOcean Spaces: https://<region>.digitaloceanspaces.com, region required".into(),
            docs_url: Some("https://docs.digitalocean.com/products/spaces/reference/s3-compatibility/".into()),
            default_region: None,
            endpoint_required: false,
            options: vec![],
            examples: table(),
        }
    }

    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint).is_ok_and(|u| u.host.ends_with(DOMAIN))
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, &[])?;
        let from_endpoint = match url::endpoint_of(c)? {
            None => None,
            Some(u) => {
                let labels = u.host.strip_suffix(DOMAIN).map(|h| h.split('.').collect::<Vec<_>>());
                match labels.as_deref() {
                    Some([region]) => Some(region.to_string()),
                    Some([bucket, region]) if *bucket == c.bucket => Some(region.to_string()),
                    Some([_, _]) => {
                        return Err(config_error(
                            "endpoint",
                            "the endpoint names another bucket than the disk's",
                        ))
                    }
                    _ => {
                        return Err(config_error(
                            "endpoint",
                            format!("{} is not a Spaces endpoint (https://<region>{DOMAIN})", u.to_url()),
                        ))
                    }
                }
            }
        };
        let region = cfg::region_agreeing(c, from_endpoint)?.ok_or_else(|| {
            config_error(
                "region",
                "Spaces needs the region (nyc3, sfo3, ams3, fra1, sgp1, syd1, ...)",
            )
        })?;
        let url = url::Url::parse(&format!("https://{region}{DOMAIN}")).expect("well-formed");
        let addressing = cfg::addressing(c, &url, false)?;
        Ok(endpoint(url.to_url(), region, addressing, vec![]))
    }
}

byos3_plugin_sdk::export_provider!(Spaces);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "region only",
            config("data").region("nyc3"),
            "https://nyc3.digitaloceanspaces.com",
            "nyc3",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "region from endpoint",
            config("data").endpoint("https://fra1.digitaloceanspaces.com"),
            "https://fra1.digitaloceanspaces.com",
            "fra1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "bucket endpoint pasted",
            config("data").endpoint("https://data.sgp1.digitaloceanspaces.com"),
            "https://sgp1.digitaloceanspaces.com",
            "sgp1",
            VirtualHosted,
            vec![],
        ),
        cases::fails("region required", config("data"), "region"),
        cases::fails(
            "other bucket's endpoint",
            config("data").endpoint("https://other.sgp1.digitaloceanspaces.com"),
            "endpoint",
        ),
        cases::fails(
            "region disagrees",
            config("data")
                .endpoint("https://fra1.digitaloceanspaces.com")
                .region("nyc3"),
            "region",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Spaces::resolve);
    }
}
