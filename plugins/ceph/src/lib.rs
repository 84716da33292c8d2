//! Ceph Object Gateway (RGW): endpoint required (port 7480 by default or
//! behind a proxy), path style by default (virtual hosts need
//! `rgw_dns_name`), region default `us-east-1` (RGW accepts it unless the
//! zonegroup's api_name says otherwise: then give that as region).

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, ResolveCase};

pub struct Ceph;

impl byos3_plugin_sdk::Provider for Ceph {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "ceph".into(),
            name: "Ceph Object Gateway (RGW)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Ceph RGW: endpoint required, path style by default, region = zonegroup api_name (default us-east-1)"
                    .into(),
            docs_url: Some("https://docs.ceph.com/en/latest/radosgw/s3/".into()),
            default_region: Some("us-east-1".into()),
            endpoint_required: true,
            options: vec![],
            examples: table(),
        }
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        byos3_plugin_sdk::endpoint_required(
            c,
            "Ceph RGW needs the gateway's endpoint, e.g. http://rgw.internal:7480",
            "us-east-1",
            true,
            vec![],
        )
    }
}

byos3_plugin_sdk::export_provider!(Ceph);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "defaults",
            config("b").endpoint("http://rgw.lan:7480"),
            "http://rgw.lan:7480",
            "us-east-1",
            Path,
            vec![],
        ),
        cases::ok(
            "zonegroup region",
            config("b").endpoint("https://rgw.example.com").region("zg-east"),
            "https://rgw.example.com",
            "zg-east",
            Path,
            vec![],
        ),
        cases::ok(
            "rgw_dns_name virtual hosts",
            config("b").endpoint("https://objects.example.com").path_style(false),
            "https://objects.example.com",
            "us-east-1",
            VirtualHosted,
            vec![],
        ),
        cases::fails("endpoint required", config("b"), "endpoint"),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Ceph::resolve);
    }
}
