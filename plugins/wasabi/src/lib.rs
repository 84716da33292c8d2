//! Wasabi: `https://s3.<region>.wasabisys.com`, region default `us-east-1`
//! (`https://s3.wasabisys.com` is us-east-1 too).

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, url, Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, ResolveCase,
};

pub struct Wasabi;

impl byos3_plugin_sdk::Provider for Wasabi {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "wasabi".into(),
            name: "Wasabi".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Wasabi: https://s3.<region>.wasabisys.com, region default us-east-1".into(),
            docs_url: Some(
                "https://docs.wasabi.com/docs/what-are-the-service-urls-for-wasabi-s-different-storage-regions".into(),
            ),
            default_region: Some("us-east-1".into()),
            endpoint_required: false,
            options: vec![],
            examples: table(),
        }
    }

    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint).is_ok_and(|u| u.host.ends_with(".wasabisys.com"))
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, &[])?;
        let from_endpoint = match url::endpoint_of(c)? {
            None => None,
            Some(u) if u.host == "s3.wasabisys.com" => Some("us-east-1".to_string()),
            Some(u) => match u
                .host
                .strip_prefix("s3.")
                .and_then(|h| h.strip_suffix(".wasabisys.com"))
            {
                Some(r) if !r.contains('.') => Some(r.to_string()),
                _ => {
                    return Err(config_error(
                        "endpoint",
                        format!(
                            "{} is not a Wasabi endpoint (https://s3.<region>.wasabisys.com)",
                            u.to_url()
                        ),
                    ))
                }
            },
        };
        let region = cfg::region_agreeing(c, from_endpoint)?.unwrap_or_else(|| "us-east-1".to_string());
        let url = url::Url::parse(&format!("https://s3.{region}.wasabisys.com")).expect("well-formed");
        let addressing = cfg::addressing(c, &url, false)?;
        Ok(endpoint(url.to_url(), region, addressing, vec![]))
    }
}

byos3_plugin_sdk::export_provider!(Wasabi);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "default region",
            config("data"),
            "https://s3.us-east-1.wasabisys.com",
            "us-east-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "legacy us-east-1 host",
            config("data").endpoint("https://s3.wasabisys.com"),
            "https://s3.us-east-1.wasabisys.com",
            "us-east-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "region",
            config("data").region("eu-central-2"),
            "https://s3.eu-central-2.wasabisys.com",
            "eu-central-2",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "region from endpoint",
            config("data").endpoint("https://s3.ap-northeast-1.wasabisys.com"),
            "https://s3.ap-northeast-1.wasabisys.com",
            "ap-northeast-1",
            VirtualHosted,
            vec![],
        ),
        cases::fails(
            "region disagrees",
            config("data")
                .endpoint("https://s3.eu-central-1.wasabisys.com")
                .region("us-west-1"),
            "region",
        ),
        cases::fails(
            "not wasabi",
            config("data").endpoint("https://console.wasabisys.example"),
            "endpoint",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Wasabi::resolve);
    }
}
